import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { httpService, registryOf } from "../translate/builders.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningSignalbox } from "../../src/app.ts";
import {
  DeltaDiscoveryRequestSchema,
  DeltaDiscoveryResponseSchema,
  DiscoveryRequestSchema,
  DiscoveryResponseSchema,
  type DeltaDiscoveryResponse,
} from "../../src/gen/envoy/service/discovery/v3/discovery_pb.ts";
import type { RegistryState } from "../../src/model/registry.ts";
import { TYPE_URLS } from "../../src/translate/resource-types.ts";
import { startStaticSignalbox, StaticRegistry } from "../support/static-sources.ts";
import { openRawStream } from "./raw-stream.ts";

/**
 * Delta xDS over the wire, with a scripted client: the aggregated service and
 * the per-type services, subscriptions, an update that carries only what
 * changed, reconnect with initial_resource_versions, NACK reporting.
 */
const DELTA_ADS = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

const state = (apiAddress: string): RegistryState => registryOf(httpService("api", [apiAddress], 1), httpService("db", ["10.1.0.2"], 1));

let signalbox: RunningSignalbox;
let client: grpc.Client;
const registry = new StaticRegistry(state("10.1.0.1"));

beforeAll(async () => {
  signalbox = await startStaticSignalbox(registry, state("10.1.0.1"));
  client = new grpc.Client(`127.0.0.1:${signalbox.xdsPort}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await signalbox?.stop();
});

interface Request {
  typeUrl: string;
  subscribe?: string[];
  unsubscribe?: string[];
  nonce?: string;
  initial?: Record<string, string>;
  error?: string;
  node?: boolean;
}

function openDelta(path = DELTA_ADS, nodeId = "web-1") {
  const stream = openRawStream(client, path, (bytes) => fromBinary(DeltaDiscoveryResponseSchema, bytes));
  let first = true;
  return {
    ...stream,
    send(request: Request): void {
      stream.call.write(
        toBinary(
          DeltaDiscoveryRequestSchema,
          create(DeltaDiscoveryRequestSchema, {
            node: first || request.node ? { id: nodeId, cluster: "web", userAgentName: "envoy" } : undefined,
            typeUrl: request.typeUrl,
            resourceNamesSubscribe: request.subscribe ?? [],
            resourceNamesUnsubscribe: request.unsubscribe ?? [],
            responseNonce: request.nonce ?? "",
            initialResourceVersions: request.initial ?? {},
            errorDetail: request.error ? { code: 3, message: request.error } : undefined,
          }),
        ),
      );
      first = false;
    },
    next: (count: number, withinMs = 3000): Promise<DeltaDiscoveryResponse> => stream.next(count, withinMs),
  };
}

const names = (r: DeltaDiscoveryResponse) => r.resources.map((x) => x.name).sort();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("delta xDS server", () => {
  it("serves CDS and EDS over DeltaAggregatedResources, and then pushes only the endpoint that changed", async () => {
    const s = openDelta();
    s.send({ typeUrl: TYPE_URLS.cluster });
    const cds = await s.next(1);
    expect(cds.typeUrl).toBe(TYPE_URLS.cluster);
    expect(names(cds)).toEqual(["outbound|api", "outbound|db"]);
    s.send({ typeUrl: TYPE_URLS.cluster, nonce: cds.nonce });
    s.send({ typeUrl: TYPE_URLS.endpoint, subscribe: ["outbound|api", "outbound|db"] });
    const eds = await s.next(2);
    expect(names(eds)).toEqual(["outbound|api", "outbound|db"]);
    s.send({ typeUrl: TYPE_URLS.endpoint, nonce: eds.nonce });

    registry.set(state("10.1.0.9"));
    const update = await s.next(3);
    expect(update.typeUrl).toBe(TYPE_URLS.endpoint);
    expect(names(update)).toEqual(["outbound|api"]);
    expect(update.resources[0]?.version).not.toBe(eds.resources.find((r) => r.name === "outbound|api")?.version);
    s.send({ typeUrl: TYPE_URLS.endpoint, nonce: update.nonce });
    await sleep(200);
    expect(s.responses).toHaveLength(3);
    s.call.end();
  });

  it("does not re-push a reconnecting client what it already has (initial_resource_versions)", async () => {
    const first = openDelta();
    first.send({ typeUrl: TYPE_URLS.cluster });
    const cds = await first.next(1);
    first.call.end();
    const held = Object.fromEntries(cds.resources.map((r) => [r.name, r.version]));

    const again = openDelta();
    again.send({ typeUrl: TYPE_URLS.cluster, initial: held });
    await sleep(300);
    expect(again.responses).toHaveLength(0);
    again.call.end();
  });

  it("serves the per-type delta services (DeltaClusters, DeltaEndpoints) and refuses other types on them", async () => {
    const cds = openDelta("/envoy.service.cluster.v3.ClusterDiscoveryService/DeltaClusters", "per-type-1");
    cds.send({ typeUrl: TYPE_URLS.cluster });
    expect(names(await cds.next(1))).toEqual(["outbound|api", "outbound|db"]);
    cds.call.end();

    const eds = openDelta("/envoy.service.endpoint.v3.EndpointDiscoveryService/DeltaEndpoints", "per-type-2");
    eds.send({ typeUrl: TYPE_URLS.endpoint, subscribe: ["outbound|db", "outbound|nope"] });
    const response = await eds.next(1);
    expect(names(response)).toEqual(["outbound|db"]);
    expect(response.removedResources).toEqual(["outbound|nope"]);
    eds.send({ typeUrl: TYPE_URLS.cluster });
    const status = await eds.status;
    expect(status.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(status.details).toContain("unsupported resource type");
  });

  it("has a proxy's DeltaEndpoints stream resend the endpoints of a cluster its DeltaClusters stream updated", async () => {
    const cds = openDelta("/envoy.service.cluster.v3.ClusterDiscoveryService/DeltaClusters", "split-1");
    const eds = openDelta("/envoy.service.endpoint.v3.EndpointDiscoveryService/DeltaEndpoints", "split-1");
    cds.send({ typeUrl: TYPE_URLS.cluster });
    const clusters = await cds.next(1);
    cds.send({ typeUrl: TYPE_URLS.cluster, nonce: clusters.nonce });
    eds.send({ typeUrl: TYPE_URLS.endpoint, subscribe: ["outbound|api", "outbound|db"] });
    const endpoints = await eds.next(1);
    eds.send({ typeUrl: TYPE_URLS.endpoint, nonce: endpoints.nonce });

    // api now speaks gRPC: its cluster changes, its endpoints do not.
    const before = registry.current();
    const api = before.services.get("api");
    if (!api) throw new Error("no api service");
    registry.set({ services: new Map([...before.services, ["api", { ...api, protocol: "grpc" }]]) });
    const updated = await cds.next(2);
    expect(names(updated)).toEqual(["outbound|api"]);
    const resent = await eds.next(2);
    expect(names(resent)).toEqual(["outbound|api"]);
    expect(resent.resources[0]?.version).toBe(endpoints.resources.find((r) => r.name === "outbound|api")?.version);
    registry.set(before);
    cds.call.end();
    eds.call.end();
  });

  it("serves the per-type state-of-the-world services too", async () => {
    const stream = openRawStream(client, "/envoy.service.endpoint.v3.EndpointDiscoveryService/StreamEndpoints", (bytes) =>
      fromBinary(DiscoveryResponseSchema, bytes),
    );
    stream.call.write(
      toBinary(
        DiscoveryRequestSchema,
        create(DiscoveryRequestSchema, { node: { id: "sotw-eds", cluster: "web" }, typeUrl: TYPE_URLS.endpoint, resourceNames: ["outbound|db"] }),
      ),
    );
    expect((await stream.next(1)).resources).toHaveLength(1);
    stream.call.end();
  });

  it("records a NACK per proxy and type, visible on /v1/proxies", async () => {
    const s = openDelta(DELTA_ADS, "nacker-delta");
    s.send({ typeUrl: TYPE_URLS.cluster });
    const cds = await s.next(1);
    s.send({ typeUrl: TYPE_URLS.cluster, nonce: cds.nonce, error: "outbound|api: rejected" });
    await expect
      .poll(async () => {
        const proxies = (await (await fetch(`http://127.0.0.1:${signalbox.adminPort}/v1/proxies`)).json()) as Array<{
          proxy: { id: string };
          protocol: string;
          types: { cluster?: { state: string; lastError: { message: string } | null } };
        }>;
        const mine = proxies.find((p) => p.proxy.id === "nacker-delta");
        return mine && { protocol: mine.protocol, state: mine.types.cluster?.state, error: mine.types.cluster?.lastError?.message };
      })
      .toEqual({ protocol: "delta", state: "nacked", error: "outbound|api: rejected" });
    s.call.end();
  });
});
