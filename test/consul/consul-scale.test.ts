/**
 * Propagation with far more services than watch slots, where services take turns
 * and a change to a service that is waiting for its turn used to take up to one
 * `wait` (30 s) to arrive. The change hints (critical-checks watch, catalog tag
 * diff, priority sweep) must bring the urgent changes in within 2 s, with at most
 * `maxConcurrentWatches + 2` connections to Consul.
 *
 * Runs against the Consul test server (always) and a real Consul when
 * CONSUL_HTTP_ADDR is set. An ad-hoc measurement with default settings and more
 * services runs when SIGNALBOX_CONSUL_SCALE is set to the service count, e.g.
 *
 *   SIGNALBOX_CONSUL_SCALE=3000 npx vitest run test/consul/consul-scale.test.ts
 *   SIGNALBOX_CONSUL_SCALE=3000 SIGNALBOX_CONSUL_HINTS=off npx vitest run test/consul/consul-scale.test.ts
 *
 * (the second one measures the rotation alone, as before change hints existed).
 * Every run prints the delays it measured.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { RegistryState } from "../../src/model/registry.ts";
import type { ConsulSourceOptions } from "../../src/sources/consul/index.ts";
import { type ConsulHandle, realConsulHandle, testServerHandle } from "./handle.ts";
import { Observer, uniquePrefix } from "./observer.ts";

const measured: Array<{ backend: string; what: string; value: string }> = [];

interface Layout {
  readonly p: string;
  readonly names: readonly string[];
  readonly nodes: number;
  nodeOf(i: number): string;
}

/** `count` services with one instance each (a TTL check, passing), spread over `nodes` nodes. */
async function populate(handle: ConsulHandle, count: number, nodes: number): Promise<Layout> {
  const p = uniquePrefix();
  const width = String(count).length;
  const names = Array.from({ length: count }, (_, i) => `${p}-s${String(i).padStart(width, "0")}`);
  const nodeOf = (i: number) => `${p}-n${i % nodes}`;
  const batch = 50;
  for (let i = 0; i < count; i += batch) {
    await Promise.all(
      names.slice(i, i + batch).map((name, j) =>
        handle.admin.register({
          node: nodeOf(i + j),
          nodeAddress: `10.${8 + ((i + j) % nodes >> 8)}.${(i + j) % nodes & 255}.1`,
          id: `${name}-1`,
          service: name,
          port: 8080,
          tags: ["v1"],
          checks: [{ id: `${name}-1-ttl`, status: "passing" }],
        }),
      ),
    );
  }
  return { p, names, nodes, nodeOf };
}

const instancesOf = (s: RegistryState, name: string) => s.services.get(name)?.instances ?? [];

/**
 * Makes each kind of change to a service that is (almost certainly) waiting for
 * its turn, and returns how long each took to reach onChange.
 */
async function measureChanges(
  handle: ConsulHandle,
  o: Observer,
  layout: Layout,
  timeoutMs: number,
): Promise<Array<{ what: string; ms: number }>> {
  const { names, nodeOf, p } = layout;
  const out: Array<{ what: string; ms: number }> = [];
  const pick = (fraction: number) => Math.floor(names.length * fraction);
  const timed = async (what: string, write: () => Promise<void>, done: (s: RegistryState) => boolean) => {
    const t0 = performance.now();
    await write();
    await o.until(done, timeoutMs, what);
    out.push({ what, ms: Math.round(performance.now() - t0) });
  };

  // A check goes critical, then passes again.
  const c = pick(0.37);
  const cName = names[c]!;
  await timed(
    "check critical",
    () => handle.admin.setCheck(nodeOf(c), `${cName}-1-ttl`, `${cName}-1`, "critical"),
    (s) => instancesOf(s, cName)[0]?.health === "unhealthy",
  );
  await timed(
    "check passing again",
    () => handle.admin.setCheck(nodeOf(c), `${cName}-1-ttl`, `${cName}-1`, "passing"),
    (s) => instancesOf(s, cName)[0]?.health === "healthy",
  );

  // `consul maint -enable -service=<id>`, then -disable.
  const m = pick(0.61);
  const mName = names[m]!;
  await timed(
    "service maintenance on",
    () => handle.admin.setCheck(nodeOf(m), `_service_maintenance:${mName}-1`, `${mName}-1`, "critical"),
    (s) => instancesOf(s, mName)[0]?.health === "draining",
  );
  await timed(
    "service maintenance off",
    () => handle.admin.removeCheck(nodeOf(m), `_service_maintenance:${mName}-1`),
    (s) => instancesOf(s, mName)[0]?.health === "healthy",
  );

  // A second instance registers in an existing service (same tags: the catalog
  // answer does not change, only its index), then deregisters.
  const r = pick(0.83);
  const rName = names[r]!;
  const extraNode = `${p}-extra`;
  await timed(
    "instance registration (existing service)",
    () =>
      handle.admin.register({
        node: extraNode,
        nodeAddress: "10.250.0.1",
        id: `${rName}-2`,
        service: rName,
        port: 8080,
        tags: ["v1"],
        checks: [{ id: `${rName}-2-ttl`, status: "passing" }],
      }),
    (s) => instancesOf(s, rName).length === 2,
  );
  await timed(
    "instance deregistration (service remains)",
    () => handle.admin.deregister(extraNode, `${rName}-2`),
    (s) => instancesOf(s, rName).length === 1,
  );

  // An instance moves to another port, checks unchanged: nothing but the sweep
  // (and the rotation) can see it.
  const q = pick(0.71);
  const qName = names[q]!;
  await timed(
    "port change, no check change (sweep only)",
    () =>
      handle.admin.register({
        node: nodeOf(q),
        id: `${qName}-1`,
        service: qName,
        port: 9090,
        tags: ["v1"],
      }),
    (s) => instancesOf(s, qName)[0]?.port === 9090,
  );

  // The last instance of a service deregisters: the service leaves the catalog.
  const d = pick(0.29);
  const dName = names[d]!;
  await timed(
    "last instance deregistration",
    () => handle.admin.deregister(nodeOf(d), `${dName}-1`),
    (s) => !s.services.has(dName),
  );

  // `consul maint -enable` on a node: every service on it drains.
  const n = pick(0.47) % layout.nodes;
  const onNode = names.filter((_, i) => i % layout.nodes === n && i !== d);
  await timed(
    `node maintenance (${onNode.length} services)`,
    () => handle.admin.setCheck(nodeOf(n), "_node_maintenance", "", "critical"),
    (s) => onNode.every((name) => instancesOf(s, name)[0]?.health === "draining"),
  );
  return out;
}

function scaleSuite(backend: string, makeHandle: () => Promise<ConsulHandle>): void {
  let handle: ConsulHandle;
  let observer: Observer | null = null;

  beforeAll(async () => {
    handle = await makeHandle();
  });
  afterAll(async () => {
    await handle?.close();
  });
  afterEach(async () => {
    await observer?.stop();
    observer = null;
    await handle.admin.cleanup();
  });

  const options = (extra: Partial<ConsulSourceOptions>): ConsulSourceOptions => ({
    address: handle.address,
    token: handle.token,
    datacenter: handle.datacenter,
    initialSyncTimeoutMs: 60_000,
    ...extra,
  });

  it("1,200 services through 16 slots: failing checks, maintenance, registrations and deregistrations arrive within 2 s, over at most 18 connections", async () => {
    const count = 1200;
    const maxConcurrentWatches = 16;
    const layout = await populate(handle, count, 60);
    handle.proxy.stats.reset();
    const started = performance.now();
    // The default wait (30 s): the rotation alone would take up to 30 s per change.
    observer = new Observer(options({ maxConcurrentWatches }));
    await observer.start();
    const mine = (s: RegistryState) => layout.names.filter((n) => s.services.has(n)).length;
    await observer.until((s) => mine(s) === count, 30_000, "initial sync");
    measured.push({ backend, what: `initial sync, ${count} services / ${maxConcurrentWatches} slots`, value: `${Math.round(performance.now() - started)} ms` });

    const results = await measureChanges(handle, observer, layout, 10_000);
    for (const r of results) measured.push({ backend, what: `${r.what}, ${count} services / ${maxConcurrentWatches} slots`, value: `${r.ms} ms` });
    for (const r of results) {
      // The sweep reads every service, so how long it takes grows with the catalog
      // (and here the test server and proxy share this process's CPU).
      expect(r.ms, r.what).toBeLessThan(r.what.includes("sweep only") ? 5000 : 2000);
    }

    const bound = maxConcurrentWatches + 2;
    const stats = observer.source.stats();
    expect(stats.maxConnections).toBe(bound);
    expect(stats.maxInFlight).toBeLessThanOrEqual(maxConcurrentWatches);
    expect(handle.proxy.stats.maxConnections).toBeLessThanOrEqual(bound);
    expect(handle.proxy.stats.maxRequestsInFlight).toBeLessThanOrEqual(bound);
    // The fast path was the hints, not the rotation.
    expect(stats.hintedReads).toBeGreaterThan(0);
    expect(stats.locatorReads).toBeGreaterThan(0);
    expect(stats.sweeps).toBeGreaterThan(0);
    measured.push({ backend, what: `peak connections (bound ${bound})`, value: String(handle.proxy.stats.maxConnections) });
    measured.push({
      backend,
      what: "hinted reads / locator reads / sweeps / sweep reads",
      value: `${stats.hintedReads} / ${stats.locatorReads} / ${stats.sweeps} / ${stats.sweepReads}`,
    });
  }, 120_000);

  const adHoc = Number(process.env.SIGNALBOX_CONSUL_SCALE ?? "0");
  const hints = process.env.SIGNALBOX_CONSUL_HINTS !== "off";
  it.skipIf(!(adHoc > 0))(`ad hoc: ${adHoc || "N"} services, default settings, change hints ${hints ? "on" : "off"}`, async () => {
    const layout = await populate(handle, adHoc, Math.max(10, Math.round(adHoc / 20)));
    handle.proxy.stats.reset();
    const started = performance.now();
    observer = new Observer(options(hints ? {} : { changeHints: false }));
    await observer.start();
    const mine = (s: RegistryState) => layout.names.filter((n) => s.services.has(n)).length;
    await observer.until((s) => mine(s) === adHoc, 120_000, "initial sync");
    const label = `${adHoc} services, defaults, hints ${hints ? "on" : "off"}`;
    measured.push({ backend, what: `initial sync, ${label}`, value: `${Math.round(performance.now() - started)} ms` });
    const results = await measureChanges(handle, observer, layout, 90_000);
    for (const r of results) measured.push({ backend, what: `${r.what}, ${label}`, value: `${r.ms} ms` });
    const stats = observer.source.stats();
    measured.push({ backend, what: `peak connections, ${label} (bound ${stats.maxConnections})`, value: String(handle.proxy.stats.maxConnections) });
    expect(handle.proxy.stats.maxConnections).toBeLessThanOrEqual(stats.maxConnections);
  }, 900_000);
}

const realAddress = process.env.CONSUL_HTTP_ADDR;

describe("Consul source at scale, against the Consul test server", () => {
  scaleSuite("test-server", testServerHandle);
});

if (!realAddress) {
  console.warn(
    "\n*** SKIPPING the Consul scale suite against a REAL Consul: CONSUL_HTTP_ADDR is not set " +
      "(see docs/consul.md, 'Tests, and running them against a real Consul').\n",
  );
}

describe.skipIf(!realAddress)(
  `Consul source at scale, against a real Consul (${realAddress ?? "SKIPPED: set CONSUL_HTTP_ADDR to run"})`,
  () => {
    scaleSuite("real-consul", () => realConsulHandle(realAddress!, process.env.CONSUL_HTTP_TOKEN));
  },
);

afterAll(() => {
  if (measured.length === 0) return;
  const lines = measured.map((m) => `  ${m.backend.padEnd(12)} ${m.what.padEnd(78)} ${m.value.padStart(10)}`);
  console.log(`\nConsul propagation at scale:\n${lines.join("\n")}\n`);
});
