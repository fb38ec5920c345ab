import { create, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { DeltaDiscoveryRequestSchema, DiscoveryRequestSchema } from "../../src/gen/envoy/service/discovery/v3/discovery_pb.ts";
import { decodeDeltaDiscoveryRequest, decodeDiscoveryRequest } from "../../src/xds/request-decode.ts";

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
    expect(decoded.request).toEqual({
      versionInfo: "v1",
      resourceNames: ["outbound|a", "outbound|é"],
      typeUrl: "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
      responseNonce: "7",
      errorDetail: { code: 3, message: "bad cluster" },
    });
    expect(decoded.node()).toMatchObject({ id: "web-1", cluster: "web", userAgentName: "envoy", metadata: { SIGNALBOX_INBOUND_PORT: "15006" } });
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
});
