/**
 * The Consul source suite. `consulSourceSuite` runs the same tests against:
 * - the in-process Consul test server (always);
 * - a real Consul, when CONSUL_HTTP_ADDR is set (for example
 *   `docker compose up -d consul` then
 *   `CONSUL_HTTP_ADDR=http://127.0.0.1:8500 npx vitest run test/consul`).
 * Faults are injected by a proxy in front of either, so no test needs anything a
 * real Consul lacks.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { RegistryState } from "../../src/model/registry.ts";
import type { ConsulSourceOptions } from "../../src/sources/consul/index.ts";
import { type ConsulHandle, realConsulHandle, testServerHandle } from "./handle.ts";
import { delay, eventually, Observer, uniquePrefix } from "./observer.ts";

/** Propagation delays measured by the suite, printed at the end. */
const measured: Array<{ backend: string; what: string; ms: number }> = [];

export function consulSourceSuite(backend: string, makeConsulHandle: () => Promise<ConsulHandle>): void {
  let handle: ConsulHandle;
  let observer: Observer | null = null;
  let p: string;

  const record = (what: string, ms: number) => measured.push({ backend, what, ms });

  function options(extra: Partial<ConsulSourceOptions> = {}): ConsulSourceOptions {
    return {
      address: handle.address,
      token: handle.token,
      datacenter: handle.datacenter,
      wait: "10s",
      backoffInitialMs: 100,
      backoffMaxMs: 1000,
      coalesceMs: 10,
      initialSyncTimeoutMs: 5000,
      ...extra,
    };
  }

  async function startSource(extra: Partial<ConsulSourceOptions> = {}): Promise<Observer> {
    observer = new Observer(options(extra));
    await observer.start();
    return observer;
  }

  const instancesOf = (state: RegistryState, name: string) => state.services.get(name)?.instances ?? [];

  beforeAll(async () => {
    handle = await makeConsulHandle();
  });
  afterAll(async () => {
    await handle?.close();
  });
  afterEach(async () => {
    handle.proxy.faults.set("none");
    await handle.proxy.up();
    await observer?.stop();
    observer = null;
    await handle.admin.cleanup();
  });

  it("delivers a registered instance within 2 s, with address, port and locality", async () => {
    p = uniquePrefix();
    const o = await startSource();
    expect(o.source.status().ready).toBe(true);
    await handle.admin.register({
      node: `${p}-n1`,
      nodeAddress: "10.1.0.1",
      id: `${p}-web-1`,
      service: `${p}-web`,
      port: 8080,
      checks: [{ id: `${p}-web-1-check`, status: "passing" }],
    });
    const ms = await o.until((s) => instancesOf(s, `${p}-web`).length === 1, 2000, "registration");
    record("registration", ms);
    const svc = o.service(`${p}-web`)!;
    expect(svc).toEqual({
      name: `${p}-web`,
      protocol: "http",
      port: 80,
      instances: [
        {
          id: `${p}-n1/${p}-web-1`,
          service: `${p}-web`,
          address: "10.1.0.1",
          port: 8080,
          meshPort: null,
          labels: {},
          region: handle.datacenter,
          zone: "",
          weight: 1,
          health: "healthy",
        },
      ],
    });
  });

  it("propagates a failing check, a warning, a deregistration and the last deregistration within 2 s", async () => {
    p = uniquePrefix();
    const name = `${p}-api`;
    for (const i of [1, 2]) {
      await handle.admin.register({
        node: `${p}-n${i}`,
        nodeAddress: `10.2.0.${i}`,
        id: `${name}-${i}`,
        service: name,
        port: 9000,
        weights: { Passing: 10, Warning: 3 },
        checks: [{ id: `${name}-${i}-ttl`, status: "passing" }],
      });
    }
    const o = await startSource();
    expect(instancesOf(o.latest!, name).map((i) => i.health)).toEqual(["healthy", "healthy"]);

    await handle.admin.setCheck(`${p}-n1`, `${name}-1-ttl`, `${name}-1`, "critical");
    let ms = await o.until((s) => instancesOf(s, name)[0]?.health === "unhealthy", 2000, "critical check");
    record("check critical", ms);
    expect(instancesOf(o.latest!, name)[1]!.health).toBe("healthy");

    await handle.admin.setCheck(`${p}-n1`, `${name}-1-ttl`, `${name}-1`, "warning");
    ms = await o.until(
      (s) => instancesOf(s, name)[0]?.health === "healthy" && instancesOf(s, name)[0]?.weight === 3,
      2000,
      "warning check",
    );
    record("check warning", ms);
    expect(instancesOf(o.latest!, name)[1]!.weight).toBe(10);

    await handle.admin.deregister(`${p}-n2`, `${name}-2`);
    ms = await o.until((s) => instancesOf(s, name).length === 1, 2000, "deregistration");
    record("deregistration", ms);

    const watched = o.source.stats().watchedServices;
    await handle.admin.deregister(`${p}-n1`, `${name}-1`);
    ms = await o.until((s) => !s.services.has(name), 2000, "last deregistration");
    record("last deregistration", ms);
    // Gone from the catalog: its watch stops too.
    await eventually(() => o.source.stats().watchedServices === watched - 1, 2000, "watch stopped");
  });

  it("maps tags and Service.Meta to labels, meta to protocol and port, and weights", async () => {
    p = uniquePrefix();
    const name = `${p}-grpc`;
    await handle.admin.register({
      node: `${p}-n1`,
      id: `${name}-1`,
      service: name,
      port: 7000,
      tags: ["v2", "canary"],
      meta: { version: "2.1", protocol: "grpc", "signalbox-port": "9090" },
      weights: { Passing: 5, Warning: 1 },
    });
    await handle.admin.register({ node: `${p}-n1`, id: `${name}-2`, service: name, port: 7001, tags: ["v1"] });
    const o = await startSource();
    const svc = o.service(name)!;
    expect(svc.protocol).toBe("grpc");
    expect(svc.port).toBe(9090);
    expect(svc.instances.map((i) => [i.id, i.labels, i.weight])).toEqual([
      [
        `${p}-n1/${name}-1`,
        { canary: "", protocol: "grpc", "signalbox-port": "9090", v2: "", version: "2.1" },
        5,
      ],
      [`${p}-n1/${name}-2`, { v1: "" }, 1],
    ]);
  });

  it("maps node meta to locality and maintenance checks to draining", async () => {
    p = uniquePrefix();
    const name = `${p}-db`;
    await handle.admin.register({
      node: `${p}-n1`,
      nodeMeta: { "signalbox-region": "eu-west", "signalbox-zone": "eu-west-1a" },
      id: `${name}-1`,
      service: name,
      port: 5432,
    });
    await handle.admin.register({ node: `${p}-n2`, id: `${name}-2`, service: name, port: 5432 });
    const o = await startSource();
    expect(o.service(name)!.instances.map((i) => [i.region, i.zone])).toEqual([
      ["eu-west", "eu-west-1a"],
      [handle.datacenter, ""],
    ]);

    // What `consul maint -enable -service=<id>` registers.
    await handle.admin.setCheck(`${p}-n1`, `_service_maintenance:${name}-1`, `${name}-1`, "critical");
    let ms = await o.until((s) => instancesOf(s, name)[0]?.health === "draining", 2000, "service maintenance");
    record("service maintenance", ms);
    await handle.admin.removeCheck(`${p}-n1`, `_service_maintenance:${name}-1`);
    await o.until((s) => instancesOf(s, name)[0]?.health === "healthy", 2000, "maintenance off");

    // What `consul maint -enable` registers for the whole node.
    await handle.admin.setCheck(`${p}-n2`, "_node_maintenance", "", "critical");
    ms = await o.until((s) => instancesOf(s, name)[1]?.health === "draining", 2000, "node maintenance");
    record("node maintenance", ms);
  });

  it("sends traffic to a registered connect-proxy sidecar, or to signalbox-mesh-port", async () => {
    p = uniquePrefix();
    const name = `${p}-web`;
    await handle.admin.register({ node: `${p}-n1`, id: `${name}-1`, service: name, port: 8080 });
    await handle.admin.register({
      node: `${p}-n1`,
      id: `${name}-1-sidecar-proxy`,
      service: `${name}-sidecar-proxy`,
      kind: "connect-proxy",
      port: 21000,
      proxy: { DestinationServiceName: name, DestinationServiceID: `${name}-1`, LocalServicePort: 8080 },
      checks: [{ id: `${name}-1-sidecar-ttl`, status: "passing" }],
    });
    await handle.admin.register({ node: `${p}-n2`, id: `${name}-2`, service: name, port: 8080 });
    await handle.admin.register({
      node: `${p}-n3`,
      id: `${name}-3`,
      service: name,
      port: 8080,
      meta: { "signalbox-mesh-port": "15006" },
    });
    const o = await startSource();
    expect(o.latest!.services.has(`${name}-sidecar-proxy`)).toBe(false);
    expect(o.service(name)!.instances.map((i) => [i.id, i.port, i.meshPort])).toEqual([
      [`${p}-n1/${name}-1`, 8080, 21000],
      [`${p}-n2/${name}-2`, 8080, null],
      [`${p}-n3/${name}-3`, 8080, 15006],
    ]);

    // Mesh traffic goes through the sidecar, so its health counts.
    await handle.admin.setCheck(`${p}-n1`, `${name}-1-sidecar-ttl`, `${name}-1-sidecar-proxy`, "critical");
    let ms = await o.until((s) => instancesOf(s, name)[0]?.health === "unhealthy", 2000, "sidecar critical");
    record("sidecar check critical", ms);

    await handle.admin.deregister(`${p}-n1`, `${name}-1-sidecar-proxy`);
    ms = await o.until(
      (s) => instancesOf(s, name)[0]?.meshPort === null && instancesOf(s, name)[0]?.health === "healthy",
      2000,
      "sidecar removed",
    );
    record("sidecar deregistration", ms);
  });

  it("does not call onChange when a blocking query returns with unchanged data", async () => {
    p = uniquePrefix();
    const name = `${p}-quiet`;
    await handle.admin.register({
      node: `${p}-n1`,
      id: `${name}-1`,
      service: name,
      port: 80,
      checks: [{ id: `${name}-1-ttl`, status: "passing", output: "ok 0" }],
    });
    const o = await startSource();
    const calls = o.source.stats().onChangeCalls;
    const answered = o.source.stats().requests.ok;
    // A new check output moves the service's index (the query returns) but
    // changes nothing the mesh sees.
    for (let i = 1; i <= 3; i++) {
      await handle.admin.setCheck(`${p}-n1`, `${name}-1-ttl`, `${name}-1`, "passing", `ok ${i}`);
      await delay(150);
    }
    await eventually(() => o.source.stats().requests.ok >= answered + 2, 3000, "blocking queries to return");
    await delay(200);
    expect(o.source.stats().onChangeCalls).toBe(calls);
    expect(o.states.length).toBe(calls);
  });

  it("resets its index when Consul's index goes backwards, and keeps receiving updates", async () => {
    p = uniquePrefix();
    const name = `${p}-rewind`;
    await handle.admin.register({ node: `${p}-n1`, id: `${name}-1`, service: name, port: 80 });
    const o = await startSource();
    const before = Number(o.source.status().revision);
    expect(before).toBeGreaterThan(1_000_000_000);
    // The three blocking queries (catalog, critical checks, service) must be waiting with the old index:
    // a query sent after the switch could not know and would block for its wait.
    await eventually(() => handle.proxy.stats.requestsInFlight >= 3, 2000, "blocking queries in flight");

    handle.proxy.rewindIndex();
    await handle.admin.register({ node: `${p}-n1`, id: `${name}-2`, service: name, port: 80 });
    let ms = await o.until((s) => instancesOf(s, name).length === 2, 2000, "update after the index went back");
    record("update after index went backwards", ms);
    await eventually(() => o.source.stats().indexResets >= 1, 2000, "index reset");
    await eventually(() => Number(o.source.status().revision) < before, 2000, "revision below the old one");

    // A client that kept the old, higher index would now block for its whole wait.
    await handle.admin.register({ node: `${p}-n1`, id: `${name}-3`, service: name, port: 80 });
    ms = await o.until((s) => instancesOf(s, name).length === 3, 2000, "second update after the index went back");
    record("second update after index went backwards", ms);
    await handle.admin.deregister(`${p}-n1`, `${name}-1`);
    await o.until((s) => instancesOf(s, name).length === 2, 2000, "third update");
  });

  for (const fault of ["garbage", "wrong-shape", "error500", "reset"] as const) {
    it(`keeps the last state on ${fault} answers, reports degraded, and recovers`, async () => {
      p = uniquePrefix();
      const name = `${p}-keep`;
      await handle.admin.register({ node: `${p}-n1`, id: `${name}-1`, service: name, port: 80 });
      const o = await startSource();
      const calls = o.source.stats().onChangeCalls;
      expect(o.source.status().degraded).toBe(false);

      handle.proxy.faults.set(fault);
      await eventually(() => o.source.status().degraded, 2000, "degraded");
      expect(o.source.status().lastError).toBeTruthy();
      // A change made while answers are broken must not be half-applied.
      await handle.admin.register({ node: `${p}-n1`, id: `${name}-2`, service: name, port: 80 });
      await delay(500);
      expect(o.source.stats().onChangeCalls).toBe(calls);
      expect(instancesOf(o.latest!, name)).toHaveLength(1);
      expect(o.source.status().degraded).toBe(true);

      handle.proxy.faults.set("none");
      const ms = await eventually(
        () => !o.source.status().degraded && instancesOf(o.latest!, name).length === 2,
        5000,
        "recovery",
      );
      record(`recovery after ${fault}`, ms);
      expect(o.source.status().lastError).toBeNull();
    });
  }

  it("keeps the last state while Consul is unreachable and catches up when it is back", async () => {
    p = uniquePrefix();
    const name = `${p}-down`;
    await handle.admin.register({ node: `${p}-n1`, id: `${name}-1`, service: name, port: 80 });
    const o = await startSource();
    const calls = o.source.stats().onChangeCalls;

    await handle.proxy.down();
    await eventually(() => o.source.status().degraded, 2000, "degraded");
    expect(o.source.status().lastError).toMatch(/ECONNREFUSED|ECONNRESET|socket hang up/);
    await handle.admin.register({ node: `${p}-n1`, id: `${name}-2`, service: name, port: 80 });
    await delay(1000);
    expect(o.source.stats().onChangeCalls).toBe(calls);
    expect(instancesOf(o.latest!, name)).toHaveLength(1);

    await handle.proxy.up();
    const ms = await eventually(
      () => !o.source.status().degraded && instancesOf(o.latest!, name).length === 2,
      5000,
      "catch up",
    );
    record("catch up after outage", ms);
  });

  it("starts while Consul is down, reports not ready, and becomes ready by itself", async () => {
    p = uniquePrefix();
    const name = `${p}-late`;
    await handle.admin.register({ node: `${p}-n1`, id: `${name}-1`, service: name, port: 80 });
    await handle.proxy.down();
    const o = await startSource({ initialSyncTimeoutMs: 500 });
    expect(o.source.status()).toMatchObject({ ready: false, degraded: true });
    expect(o.states).toHaveLength(0);
    await handle.proxy.up();
    await o.until((s) => s.services.has(name), 5000, "first state");
    expect(o.source.status()).toMatchObject({ ready: true, degraded: false });
  });

  it("reports an unknown datacenter as degraded", async () => {
    const o = await startSource({ datacenter: "no-such-dc", initialSyncTimeoutMs: 300 });
    await eventually(() => o.source.status().degraded, 2000, "degraded");
    expect(o.source.status().ready).toBe(false);
    expect(o.source.status().lastError).toMatch(/500/);
  });

  it("with change hints off, holds one connection fewer and still sees changes", async () => {
    p = uniquePrefix();
    const name = `${p}-plain`;
    await handle.admin.register({ node: `${p}-n1`, id: `${name}-1`, service: name, port: 80, checks: [{ id: `${name}-1-ttl`, status: "passing" }] });
    const o = await startSource({ changeHints: false, maxConcurrentWatches: 4 });
    expect(o.source.stats().maxConnections).toBe(5);
    await handle.admin.setCheck(`${p}-n1`, `${name}-1-ttl`, `${name}-1`, "critical");
    await o.until((s) => instancesOf(s, name)[0]?.health === "unhealthy", 2000, "critical check");
    const stats = o.source.stats();
    expect(stats.criticalChecks).toBe(-1);
    expect(stats.locatorReads + stats.sweeps + stats.hintedReads).toBe(0);
  });

  it("watches 500 services through a bounded number of connections", async () => {
    p = uniquePrefix();
    const count = 500;
    const names = Array.from({ length: count }, (_, i) => `${p}-s${String(i).padStart(3, "0")}`);
    for (let i = 0; i < count; i += 25) {
      await Promise.all(
        names.slice(i, i + 25).map((name, j) =>
          handle.admin.register({
            node: `${p}-n${(i + j) % 10}`,
            nodeAddress: `10.5.0.${(i + j) % 10}`,
            id: `${name}-1`,
            service: name,
            port: 80,
            checks: [{ id: `${name}-1-ttl`, status: "passing" }],
          }),
        ),
      );
    }
    await delay(200);
    handle.proxy.stats.reset();
    const maxConcurrentWatches = 16;
    const started = performance.now();
    const o = await startSource({ maxConcurrentWatches, wait: "5s", minRotationWaitMs: 100, initialSyncTimeoutMs: 20_000 });
    const mine = (s: RegistryState) => names.filter((n) => s.services.has(n)).length;
    await o.until((s) => mine(s) === count, 20_000, "all services");
    record(`initial sync of ${count} services`, Math.round(performance.now() - started));

    // A change to one service still arrives while services take turns.
    const target = names[count - 7]!;
    await handle.admin.setCheck(`${p}-n${(count - 7) % 10}`, `${target}-1-ttl`, `${target}-1`, "critical");
    const ms = await o.until((s) => s.services.get(target)?.instances[0]?.health === "unhealthy", 12_000, "change");
    record(`check change with ${count} services / ${maxConcurrentWatches} slots`, ms);

    // The slots, the catalog watch and the critical-checks watch.
    const bound = maxConcurrentWatches + 2;
    const stats = o.source.stats();
    expect(stats.maxConnections).toBe(bound);
    expect(stats.maxInFlight).toBeLessThanOrEqual(maxConcurrentWatches);
    expect(handle.proxy.stats.maxConnections).toBeLessThanOrEqual(bound);
    expect(handle.proxy.stats.maxRequestsInFlight).toBeLessThanOrEqual(bound);
    measured.push({
      backend,
      what: `peak connections with ${count} services (bound ${bound})`,
      ms: handle.proxy.stats.maxConnections,
    });
  }, 60_000);
}

const realAddress = process.env.CONSUL_HTTP_ADDR;

describe("Consul source against the Consul test server", () => {
  consulSourceSuite("test-server", testServerHandle);
});

if (!realAddress) {
  console.warn(
    "\n*** SKIPPING the Consul source suite against a REAL Consul: CONSUL_HTTP_ADDR is not set.\n" +
      "*** To run it: docker compose up -d consul && CONSUL_HTTP_ADDR=http://127.0.0.1:8500 npx vitest run test/consul\n" +
      "*** (see docs/consul.md, 'Testing against a real Consul').\n",
  );
}

describe.skipIf(!realAddress)(
  `Consul source against a real Consul (${realAddress ?? "SKIPPED: set CONSUL_HTTP_ADDR to run"})`,
  () => {
    consulSourceSuite("real-consul", () => realConsulHandle(realAddress!, process.env.CONSUL_HTTP_TOKEN));
  },
);

afterAll(() => {
  if (measured.length === 0) return;
  const lines = measured.map((m) => `  ${m.backend.padEnd(12)} ${m.what.padEnd(62)} ${String(m.ms).padStart(6)}`);
  console.log(`\nConsul source measurements (ms unless stated):\n${lines.join("\n")}\n`);
});
