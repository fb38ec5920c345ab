import { create, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { DeltaDiscoveryRequestSchema, DiscoveryRequestSchema } from "../../src/gen/envoy/service/discovery/v3/discovery_pb.ts";
import { TYPE_URLS } from "../../src/translate/resource-types.ts";
import { decodeDeltaDiscoveryRequest, decodeDiscoveryRequest, nonceString, type SotwRequest } from "../../src/xds/request-decode.ts";

/** The fields a stream reads (decoded requests compute some of them on demand). */
const fields = (request: SotwRequest) => ({
  versionInfo: request.versionInfo,
  resourceNames: request.resourceNames,
  typeUrl: request.typeUrl,
  responseNonce: request.responseNonce,
  errorDetail: request.errorDetail,
});

/** The hand decoder reads what protobuf-es would, and refuses what protobuf-es refuses. */
describe("decodeDiscoveryRequest", () => {
  it("reads every field a stream uses, and the node on demand", () => {
    const bytes = toBinary(
      DiscoveryRequestSchema,
      create(DiscoveryRequestSchema, {
        versionInfo: "v1",
        node: { id: "web-1", cluster: "web", userAgentName: "envoy", metadata: { SIGNALBOX_INBOUND_PORT: "15006" } },
        resourceNames: ["outbound|a", "outbound|é"],
        typeUrl: "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
        responseNonce: "7",
        errorDetail: { code: 3, message: "bad cluster" },
        resourceLocators: [{ name: "ignored" }],
      }),
    );
    const decoded = decodeDiscoveryRequest(bytes);
    expect(fields(decoded.request)).toEqual({
      versionInfo: "v1",
      resourceNames: ["outbound|a", "outbound|é"],
      typeUrl: "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
      responseNonce: "7",
      errorDetail: { code: 3, message: "bad cluster" },
    });
    expect(decoded.node()).toMatchObject({ id: "web-1", cluster: "web", userAgentName: "envoy", metadata: { SIGNALBOX_INBOUND_PORT: "15006" } });
  });

  it("compares the version and the names' wire bytes without decoding them", () => {
    const request = (names: string[], versionInfo = "v1") =>
      decodeDiscoveryRequest(
        toBinary(DiscoveryRequestSchema, create(DiscoveryRequestSchema, { versionInfo, resourceNames: names, typeUrl: TYPE_URLS.endpoint, responseNonce: "12" })),
      ).request;
    const a = request(["outbound|a", "outbound|b"]);
    expect(a.hasVersion?.("v1")).toBe(true);
    expect(a.hasVersion?.("v2")).toBe(false);
    expect(a.hasVersion?.("v")).toBe(false);
    expect(request(["x"], "é").hasVersion?.("é")).toBe(true);
    const bytes = (r: SotwRequest) => Buffer.from(r.resourceNamesBytes ?? []);
    expect(bytes(a).equals(bytes(request(["outbound|a", "outbound|b"], "v2")))).toBe(true);
    expect(bytes(a).equals(bytes(request(["outbound|b", "outbound|a"])))).toBe(false);
    expect(request([]).resourceNamesBytes).toHaveLength(0);
    // Our type URLs and small nonces are shared strings.
    expect(a.typeUrl).toBe(TYPE_URLS.endpoint);
    expect(a.responseNonce).toBe(nonceString(12));
  });

  it("reads names that are not adjacent on the wire, but offers no bytes to compare", () => {
    const part = (request: MessageInitShape<typeof DiscoveryRequestSchema>) => toBinary(DiscoveryRequestSchema, create(DiscoveryRequestSchema, request));
    const bytes = Buffer.concat([part({ resourceNames: ["a"] }), part({ typeUrl: "t" }), part({ resourceNames: ["b"] })]);
    const decoded = decodeDiscoveryRequest(bytes).request;
    expect(decoded.resourceNames).toEqual(["a", "b"]);
    expect(decoded.typeUrl).toBe("t");
    expect(decoded.resourceNamesBytes).toBeUndefined();
  });

  it("reads nonces that are not small decimal numbers as they are", () => {
    for (const nonce of ["0", "007", "123456", "abc", "1a", "é"]) {
      expect(decodeDiscoveryRequest(toBinary(DiscoveryRequestSchema, create(DiscoveryRequestSchema, { responseNonce: nonce }))).request.responseNonce).toBe(nonce);
    }
  });

  it("leaves unusual encodings (fixed-width unknown fields, long tags) to protobuf-es's reader", () => {
    const base = toBinary(DiscoveryRequestSchema, create(DiscoveryRequestSchema, { versionInfo: "v9", resourceNames: ["a"], typeUrl: "t", responseNonce: "5" }));
    // Unknown field 20 as fixed32 (two-byte tag), then unknown field 9 as fixed64.
    const extra = Uint8Array.from([0xa5, 0x01, 1, 2, 3, 4, 0x49, 1, 2, 3, 4, 5, 6, 7, 8]);
    const decoded = decodeDiscoveryRequest(Buffer.concat([base, extra])).request;
    expect(fields(decoded)).toEqual({ versionInfo: "v9", resourceNames: ["a"], typeUrl: "t", responseNonce: "5", errorDetail: undefined });
  });

  it("gives an absent error detail and node as undefined", () => {
    const decoded = decodeDiscoveryRequest(toBinary(DiscoveryRequestSchema, create(DiscoveryRequestSchema, { typeUrl: "t" })));
    expect(decoded.request.errorDetail).toBeUndefined();
    expect(decoded.node()).toBeUndefined();
  });

  it.each([
    ["a bad wire type", [0xff, 0xff, 0xff, 0xff, 0x0f]],
    ["a length past the end", [0x0a, 0x05, 0x61]],
    ["a truncated varint", [0x08, 0xff]],
    ["a string field sent as a varint", [0x20, 0x01]],
  ])("throws on %s", (_name, bytes) => {
    expect(() => decodeDiscoveryRequest(Uint8Array.from(bytes))).toThrow();
  });
});

describe("decodeDeltaDiscoveryRequest", () => {
  it("reads subscriptions, initial versions, nonce, error and node", () => {
    const bytes = toBinary(
      DeltaDiscoveryRequestSchema,
      create(DeltaDiscoveryRequestSchema, {
        node: { id: "web-1", cluster: "web" },
        typeUrl: "type.googleapis.com/envoy.config.cluster.v3.Cluster",
        resourceNamesSubscribe: ["*", "outbound|a"],
        resourceNamesUnsubscribe: ["outbound|b"],
        initialResourceVersions: { "outbound|a": "v1", "outbound|c": "v2" },
        responseNonce: "3",
        errorDetail: { code: 13, message: "nope" },
      }),
    );
    const decoded = decodeDeltaDiscoveryRequest(bytes);
    expect(decoded.request.typeUrl).toBe("type.googleapis.com/envoy.config.cluster.v3.Cluster");
    expect(decoded.request.resourceNamesSubscribe).toEqual(["*", "outbound|a"]);
    expect(decoded.request.resourceNamesUnsubscribe).toEqual(["outbound|b"]);
    expect({ ...decoded.request.initialResourceVersions }).toEqual({ "outbound|a": "v1", "outbound|c": "v2" });
    expect(decoded.request.responseNonce).toBe("3");
    expect(decoded.request.errorDetail).toEqual({ code: 13, message: "nope" });
    expect(decoded.node()?.id).toBe("web-1");
  });

  it("offers the subscribe names' wire bytes when adjacent, and decodes the names only when read", () => {
    const part = (request: MessageInitShape<typeof DeltaDiscoveryRequestSchema>) => toBinary(DeltaDiscoveryRequestSchema, create(DeltaDiscoveryRequestSchema, request));
    const subscribe = (names: string[]) => decodeDeltaDiscoveryRequest(part({ typeUrl: TYPE_URLS.endpoint, resourceNamesSubscribe: names })).request;
    const bytes = (names: string[]) => Buffer.from(subscribe(names).resourceNamesSubscribeBytes ?? []);
    expect(bytes(["outbound|a", "é"]).equals(bytes(["outbound|a", "é"]))).toBe(true);
    expect(bytes(["outbound|a", "é"]).equals(bytes(["é", "outbound|a"]))).toBe(false);
    expect(subscribe(["outbound|a", "é"]).resourceNamesSubscribe).toEqual(["outbound|a", "é"]);
    expect(subscribe([]).resourceNamesSubscribeBytes).toHaveLength(0);
    // Not adjacent: the names are read, and there are no bytes to compare.
    const split = decodeDeltaDiscoveryRequest(Buffer.concat([part({ resourceNamesSubscribe: ["a"] }), part({ responseNonce: "5" }), part({ resourceNamesSubscribe: ["b"] })])).request;
    expect(split.resourceNamesSubscribe).toEqual(["a", "b"]);
    expect(split.resourceNamesSubscribeBytes).toBeUndefined();
    expect(split.responseNonce).toBe("5");
  });

  it("reads an ACK without allocating lists, and refuses malformed input", () => {
    const ack = decodeDeltaDiscoveryRequest(
      toBinary(DeltaDiscoveryRequestSchema, create(DeltaDiscoveryRequestSchema, { typeUrl: TYPE_URLS.cluster, responseNonce: "4" })),
    );
    expect(ack.request.typeUrl).toBe(TYPE_URLS.cluster);
    expect(ack.request.responseNonce).toBe("4");
    expect(ack.request.resourceNamesSubscribe).toEqual([]);
    expect({ ...ack.request.initialResourceVersions }).toEqual({});
    expect(ack.node()).toBeUndefined();
    expect(() => decodeDeltaDiscoveryRequest(Uint8Array.from([0x12, 0x05, 0x61]))).toThrow();
    expect(() => decodeDeltaDiscoveryRequest(Uint8Array.from([0x10, 0x01]))).toThrow();
  });
});
