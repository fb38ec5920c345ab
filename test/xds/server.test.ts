import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningSignalbox } from "../../src/app.ts";
import { DiscoveryRequestSchema, DiscoveryResponseSchema } from "../../src/gen/envoy/service/discovery/v3/discovery_pb.ts";
import type { RegistryState } from "../../src/model/registry.ts";
import { TYPE_URLS } from "../../src/translate/resource-types.ts";
import { startStaticSignalbox, StaticRegistry } from "../support/static-sources.ts";
import { httpService, registryOf } from "../translate/builders.ts";
import { openRawStream } from "./raw-stream.ts";

/** The gRPC server and admin API with a scripted ADS client and in-memory sources. */
const ADS = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
const registryState: RegistryState = registryOf(httpService("api", ["10.1.0.1"], 1));

let signalbox: RunningSignalbox;
let client: grpc.Client;

beforeAll(async () => {
  signalbox = await startStaticSignalbox(new StaticRegistry(registryState), registryState);
  client = new grpc.Client(`127.0.0.1:${signalbox.xdsPort}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await signalbox?.stop();
});

/** A raw ADS stream: write bytes, read decoded responses, see the final status. */
function openStream() {
  return openRawStream(client, ADS, (bytes) => fromBinary(DiscoveryResponseSchema, bytes));
}

async function admin(path: string): Promise<unknown> {
  const response = await fetch(`http://127.0.0.1:${signalbox.adminPort}${path}`);
  return response.headers.get("content-type")?.includes("json") ? response.json() : response.text();
}

describe("xDS server", () => {
  it("refuses a garbage request with INVALID_ARGUMENT and a clear message, and keeps serving others", async () => {
    const stream = openStream();
    stream.call.write(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0x0f]));
    const status = await stream.status;
    expect(status.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(status.details).toMatch(/^malformed DiscoveryRequest: /);

    const healthy = openStream();
    healthy.call.write(toBinary(DiscoveryRequestSchema, create(DiscoveryRequestSchema, { typeUrl: TYPE_URLS.cluster, node: { id: "ok-1", cluster: "web" } })));
    expect((await healthy.next(1)).resources).toHaveLength(1);
    healthy.call.end();
  });

  it("refuses an unknown resource type with INVALID_ARGUMENT naming it", async () => {
    const stream = openStream();
    stream.call.write(toBinary(DiscoveryRequestSchema, create(DiscoveryRequestSchema, { typeUrl: "type.googleapis.com/foo.Bar", node: { id: "x" } })));
    const status = await stream.status;
    expect(status.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(status.details).toContain('unsupported resource type "type.googleapis.com/foo.Bar"');
  });

  it("shows connected proxies, ACK and NACK state with the error on /v1/proxies and in /metrics", async () => {
    const stream = openStream();
    const node = { id: "nacker-1", cluster: "web", userAgentName: "envoy" };
    stream.call.write(toBinary(DiscoveryRequestSchema, create(DiscoveryRequestSchema, { typeUrl: TYPE_URLS.cluster, node })));
    const first = await stream.next(1);
    stream.call.write(
      toBinary(
        DiscoveryRequestSchema,
        create(DiscoveryRequestSchema, {
          typeUrl: TYPE_URLS.cluster,
          responseNonce: first.nonce,
          versionInfo: "",
          errorDetail: { code: 3, message: "outbound|api: bad connect_timeout" },
        }),
      ),
    );
    await expect.poll(async () => {
      const proxies = (await admin("/v1/proxies")) as Array<{ proxy: { id: string }; types: { cluster?: { state: string } } }>;
      return proxies.find((p) => p.proxy.id === "nacker-1")?.types.cluster?.state;
    }).toBe("nacked");
    const proxies = (await admin("/v1/proxies")) as Array<{ proxy: { id: string; kind: string }; types: Record<string, unknown> }>;
    expect(proxies.find((p) => p.proxy.id === "nacker-1")).toMatchObject({
      proxy: { kind: "envoy", service: "web" },
      types: { cluster: { sentVersion: first.versionInfo, lastError: { version: first.versionInfo, message: "outbound|api: bad connect_timeout" } } },
    });
    const metrics = (await admin("/metrics")) as string;
    expect(metrics).toMatch(/signalbox_xds_nacks_total\{type="cluster"\} [1-9]/);
    expect(metrics).toMatch(/signalbox_xds_connected_proxies\{kind="envoy",protocol="sotw"\} [1-9]/);
    stream.call.end();
  });

  it("answers /healthz and /readyz", async () => {
    expect(await admin("/healthz")).toEqual({ status: "ok" });
    expect(await admin("/readyz")).toMatchObject({ status: "ready" });
    expect(await admin("/nope")).toMatchObject({ error: "no such endpoint /nope" });
  });
});
