import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConsulRegistrySource } from "../../src/sources/consul/index.ts";
import { mergeRegistries } from "../../src/sources/merge-registry.ts";
import { testServerHandle, type ConsulHandle } from "../consul/handle.ts";
import {
  CLIENT_KINDS,
  closeAllClientSessions,
  errorCount,
  pollCalls,
  startBackends,
  startClientSession,
  stopBackends,
  type Backend,
  type ClientSession,
} from "../support/clients/index.ts";
import { startMesh, type E2eMesh } from "./harness.ts";

/**
 * Consul mode end to end: instances registered in Consul (the Consul HTTP API test
 * server, behind a fault proxy), rules in PostgreSQL, real xDS clients.
 */
let consul: ConsulHandle;
let mesh: E2eMesh;
let backends: Backend[];
const measured: Record<string, number> = {};

beforeAll(async () => {
  backends = await startBackends(["c-1", "c-2", "c-3"]);
  consul = await testServerHandle();
  for (const backend of backends) {
    await consul.admin.register({
      node: `node-${backend.name}`,
      nodeAddress: backend.host,
      id: backend.name,
      service: "inventory",
      port: backend.port,
      meta: { protocol: "grpc" },
      checks: [{ id: `check-${backend.name}`, status: "passing" }],
    });
  }
  const source = new ConsulRegistrySource({
    address: consul.address,
    wait: "2s",
    minLoopIntervalMs: 50,
    backoffInitialMs: 100,
    backoffMaxMs: 500,
    logger: pino({ level: "silent" }),
  });
  mesh = await startMesh([source], ([database, fromConsul]) =>
    mergeRegistries(database ?? { services: new Map() }, fromConsul ?? { services: new Map() }),
  );
});

afterAll(async () => {
  console.log(`[consul e2e measurements] ${JSON.stringify(measured)}`);
  await closeAllClientSessions();
  await mesh?.close();
  await consul?.close();
  await stopBackends(backends ?? []);
});

describe.each(CLIENT_KINDS)("%s client with Consul discovery", (kind) => {
  let session: ClientSession;
  const reached = (r: { byBackend: Record<string, number> }, name: string) => (r.byBackend[name] ?? 0) > 0;

  beforeAll(async () => {
    for (const backend of backends) {
      await consul.admin.register({
        node: `node-${backend.name}`,
        id: backend.name,
        service: "inventory",
        port: backend.port,
        meta: { protocol: "grpc" },
        checks: [{ id: `check-${backend.name}`, status: "passing" }],
      });
    }
    session = await startClientSession(kind, {
      bootstrap: mesh.bootstrap("shop", `shop-${kind}`),
      target: "xds:///inventory",
      requireReady: true,
    });
  });

  afterAll(async () => {
    await session?.close();
  });

  it("routes RPCs to every instance registered in Consul", async () => {
    const result = await pollCalls(session, 60, (r) => backends.every((b) => reached(r, b.name)));
    expect(errorCount(result)).toBe(0);
  });

  it("moves traffic away within 2 s when an instance's check fails", async () => {
    const started = performance.now();
    await consul.admin.setCheck("node-c-1", "check-c-1", "c-1", "critical", "connection refused");
    await pollCalls(session, 30, (r) => !reached(r, "c-1"), { withinMs: 2000, intervalMs: 10 });
    measured[`${kind}_check_critical_to_no_traffic_ms`] = Math.round(performance.now() - started);
    const after = await session.call(100);
    expect(after.byBackend["c-1"] ?? 0).toBe(0);
    expect(errorCount(after)).toBe(0);
  });

  it("moves traffic away within 2 s when an instance is deregistered", async () => {
    const started = performance.now();
    await consul.admin.deregister("node-c-2", "c-2");
    await pollCalls(session, 30, (r) => !reached(r, "c-2"), { withinMs: 2000, intervalMs: 10 });
    measured[`${kind}_deregister_to_no_traffic_ms`] = Math.round(performance.now() - started);
    const after = await session.call(100);
    expect(after.byBackend).toEqual({ "c-3": 100 });
  });

  it("keeps traffic flowing through a Consul outage and catches up afterwards", async () => {
    await consul.proxy.down();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const status = mesh.signalbox.pipeline.sourceStatuses().find((s) => s.name === "consul");
    expect(status?.degraded).toBe(true);
    const during = await session.call(100);
    expect(during.byBackend).toEqual({ "c-3": 100 });
    const ready = await fetch(`http://127.0.0.1:${mesh.signalbox.adminPort}/readyz`).then((r) => r.json());
    expect(ready).toMatchObject({ status: "degraded" });

    // A change made during the outage arrives once Consul is back.
    await consul.admin.setCheck("node-c-1", "check-c-1", "c-1", "passing");
    await consul.proxy.up();
    await pollCalls(session, 60, (r) => reached(r, "c-1"), { withinMs: 5000 });
    const deadline = performance.now() + 5000;
    const consulDegraded = () => mesh.signalbox.pipeline.sourceStatuses().find((s) => s.name === "consul")?.degraded;
    while (consulDegraded() && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(consulDegraded()).toBe(false);
  });
});
