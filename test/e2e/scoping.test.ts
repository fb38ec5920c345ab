import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ClusterSchema } from "../../src/gen/envoy/config/cluster/v3/cluster_pb.ts";
import { ClusterLoadAssignmentSchema } from "../../src/gen/envoy/config/endpoint/v3/endpoint_pb.ts";
import {
  DiscoveryRequestSchema,
  DiscoveryResponseSchema,
  type DiscoveryResponse,
} from "../../src/gen/envoy/service/discovery/v3/discovery_pb.ts";
import { TYPE_URLS, type ResourceKind } from "../../src/translate/resource-types.ts";
import { startMesh, type E2eMesh } from "./harness.ts";

/**
 * Scoping and coalescing end to end: rows in PostgreSQL, Signalbox, and two
 * scripted Envoys doing the ADS exchange (CDS and LDS wildcard, EDS and RDS by
 * name, ACKing everything).
 *  - mesh.service_dependencies scopes each proxy to what its service calls;
 *  - an endpoint change reaches the proxy that calls that service and causes no
 *    push at all to one that does not;
 *  - a burst of 100 committed row updates reaches a proxy as a bounded number of
 *    pushes, the last carrying the final state.
 */
const ADS = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
let mesh: E2eMesh;
let client: grpc.Client;

class ScriptedEnvoy {
  readonly responses: DiscoveryResponse[] = [];
  private readonly call: grpc.ClientDuplexStream<Uint8Array, Buffer>;
  private readonly subscribed: Partial<Record<ResourceKind, string[]>> = {};
  private first = true;

  constructor(
    readonly id: string,
    readonly service: string,
  ) {
    this.call = client.makeBidiStreamRequest<Uint8Array, Buffer>(ADS, (v) => Buffer.from(v), (b) => b);
    this.call.on("error", () => {});
    this.call.on("data", (bytes: Buffer) => this.onResponse(fromBinary(DiscoveryResponseSchema, bytes)));
    this.request("cluster", [], "", "");
  }

  private request(kind: ResourceKind, names: string[], version: string, nonce: string): void {
    this.subscribed[kind] = names;
    this.call.write(
      toBinary(
        DiscoveryRequestSchema,
        create(DiscoveryRequestSchema, {
          node: this.first ? { id: this.id, cluster: this.service, userAgentName: "envoy" } : undefined,
          typeUrl: TYPE_URLS[kind],
          resourceNames: names,
          versionInfo: version,
          responseNonce: nonce,
        }),
      ),
    );
    this.first = false;
  }

  private onResponse(response: DiscoveryResponse): void {
    this.responses.push(response);
    const kind = (Object.keys(TYPE_URLS) as ResourceKind[]).find((k) => TYPE_URLS[k] === response.typeUrl) as ResourceKind;
    this.request(kind, this.subscribed[kind] ?? [], response.versionInfo, response.nonce);
    if (kind === "cluster") {
      const eds = response.resources.map((any) => fromBinary(ClusterSchema, any.value)).filter((c) => c.edsClusterConfig).map((c) => c.name);
      if (JSON.stringify(eds) !== JSON.stringify(this.subscribed.endpoint)) this.request("endpoint", eds, "", "");
    }
    if (kind === "endpoint" && !this.subscribed.listener) this.request("listener", [], "", "");
    if (kind === "listener" && !this.subscribed.route) this.request("route", ["outbound|http"], "", "");
  }

  ofKind(kind: ResourceKind, from = 0): DiscoveryResponse[] {
    return this.responses.slice(from).filter((r) => r.typeUrl === TYPE_URLS[kind]);
  }

  addresses(response: DiscoveryResponse): string[] {
    return response.resources.flatMap((any) =>
      fromBinary(ClusterLoadAssignmentSchema, any.value).endpoints.flatMap((locality) =>
        locality.lbEndpoints.map((lb) => {
          const id = lb.hostIdentifier;
          return id.case === "endpoint" && id.value.address?.address.case === "socketAddress" ? id.value.address.address.value.address : "";
        }),
      ),
    );
  }

  close(): void {
    this.call.end();
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition: () => boolean, withinMs = 5000): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > withinMs) throw new Error("condition not met in time");
    await sleep(20);
  }
}

/** Waits until no response has arrived for `quietMs`. */
async function settle(envoys: ScriptedEnvoy[], quietMs = 400, withinMs = 5000): Promise<void> {
  const start = Date.now();
  let last = -1;
  let stableSince = Date.now();
  while (Date.now() - start < withinMs) {
    const count = envoys.reduce((sum, e) => sum + e.responses.length, 0);
    if (count !== last) {
      last = count;
      stableSince = Date.now();
    } else if (Date.now() - stableSince >= quietMs && count > 0) return;
    await sleep(20);
  }
}

let a: ScriptedEnvoy;
let b: ScriptedEnvoy;

beforeAll(async () => {
  mesh = await startMesh();
  await mesh.sql.query(`INSERT INTO mesh.services (name) VALUES ('a'), ('b'), ('x'), ('y')`);
  await mesh.sql.query(`INSERT INTO mesh.instances (id, service, address, port) VALUES
    ('x-1', 'x', '10.0.0.1', 8080), ('y-1', 'y', '10.0.1.1', 8080), ('a-1', 'a', '10.0.2.1', 8080), ('b-1', 'b', '10.0.3.1', 8080)`);
  await mesh.sql.query(`INSERT INTO mesh.service_dependencies (service, depends_on) VALUES ('a', 'x'), ('b', 'y')`);
  await until(() => JSON.stringify(mesh.signalbox.cache.currentSnapshot()?.dependencies?.get("a")) === '["x"]');
  client = new grpc.Client(`127.0.0.1:${mesh.signalbox.xdsPort}`, grpc.credentials.createInsecure());
  a = new ScriptedEnvoy("a-1", "a");
  b = new ScriptedEnvoy("b-1", "b");
  await until(() => a.ofKind("route").length > 0 && b.ofKind("route").length > 0);
  await settle([a, b]);
});

afterAll(async () => {
  a?.close();
  b?.close();
  client?.close();
  await mesh?.close();
});

describe("scoping by mesh.service_dependencies", () => {
  it("gives each proxy only the services it calls", () => {
    const clusters = (e: ScriptedEnvoy) => e.ofKind("cluster").at(-1)?.resources.map((any) => fromBinary(ClusterSchema, any.value).name);
    expect(clusters(a)).toEqual(["outbound|x"]);
    expect(clusters(b)).toEqual(["outbound|y"]);
  });

  it("pushes an endpoint change to the proxy that calls the service, and nothing at all to one that does not", async () => {
    const aBefore = a.responses.length;
    const bBefore = b.responses.length;
    await mesh.sql.query(`UPDATE mesh.instances SET address = '10.0.0.2' WHERE id = 'x-1'`);
    await expect.poll(() => a.ofKind("endpoint", aBefore).length, { timeout: 3000 }).toBe(1);
    await settle([a, b]);
    const pushed = a.responses.slice(aBefore);
    expect(pushed.map((r) => r.typeUrl)).toEqual([TYPE_URLS.endpoint]);
    expect(a.addresses(pushed[0] as DiscoveryResponse)).toEqual(["10.0.0.2"]);
    expect(b.responses.length).toBe(bBefore);
  });
});

describe("coalescing", () => {
  it("collapses a burst of 100 committed row updates into a few pushes, the last with the final state", async () => {
    const before = a.responses.length;
    const bBefore = b.responses.length;
    for (let i = 1; i <= 100; i++) {
      await mesh.sql.query(`UPDATE mesh.instances SET address = $1 WHERE id = 'x-1'`, [`10.0.9.${i}`]);
    }
    await expect.poll(() => a.ofKind("endpoint", before).at(-1) && a.addresses(a.ofKind("endpoint", before).at(-1) as DiscoveryResponse), { timeout: 5000 }).toEqual(["10.0.9.100"]);
    await settle([a, b]);
    const pushes = a.ofKind("endpoint", before).length;
    console.log(`[coalescing] 100 committed updates -> ${pushes} EDS pushes`);
    expect(pushes).toBeGreaterThanOrEqual(1);
    expect(pushes).toBeLessThanOrEqual(5);
    expect(a.responses.slice(before).every((r) => r.typeUrl === TYPE_URLS.endpoint)).toBe(true);
    expect(b.responses.length).toBe(bBefore);
  });
});
