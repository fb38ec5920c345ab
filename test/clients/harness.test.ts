// Proves the client harness: two independent real xDS clients (grpc-js-xds and
// gRPC C-core), each in its own process, resolve xds:/// targets from a scripted
// ADS server (test/support/clients/static-ads.ts) and send real RPCs to real
// gRPC backends; a live client follows a pushed config change without restarting.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import {
  CLIENT_KINDS,
  TYPE,
  apiListener,
  clientAvailability,
  closeAllClientSessions,
  endpointOf,
  errorCount,
  makeBootstrap,
  pollCalls,
  prewarmClients,
  routeConfig,
  runClient,
  serviceResources,
  share,
  startBackends,
  startClientSession,
  startStaticAds,
  stopBackends,
  type Backend,
  type ClientSession,
  type ResourceMap,
  type StaticAds,
} from "../support/clients/index.ts";

function merge(...maps: ResourceMap[]): ResourceMap {
  const out: ResourceMap = {};
  for (const m of maps) for (const [t, list] of Object.entries(m)) out[t] = [...(out[t] ?? []), ...(list ?? [])];
  return out;
}

const processAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe.each(CLIENT_KINDS)("client harness: %s", (kind) => {
  const availability = clientAvailability(kind);
  if (!availability.ok) {
    it.skip(`SKIPPED: ${availability.reason}`, () => {});
    return;
  }

  let backends: Backend[];
  let b1: Backend;
  let b2: Backend;
  let ads: StaticAds;
  let bootstrap: object;
  let echo: ClientSession;

  beforeAll(async () => {
    // Load two spare client processes while the servers start (see prewarmClients).
    const warming = prewarmClients(kind, 2);
    backends = await startBackends(["b1", "b2"]);
    [b1, b2] = backends as [Backend, Backend];
    ads = await startStaticAds({
      resources: merge(
        // xds:///echo -> cluster "echo" (round robin over b1, b2)
        serviceResources({ service: "echo", clusters: [{ name: "echo", endpoints: [endpointOf(b1), endpointOf(b2)] }] }),
        // xds:///split -> weighted split split-a (b1) : split-b (b2), 100:0 to start.
        // Weights sum to 100: gRPC C-core 1.51 NACKs any other total.
        serviceResources({
          service: "split",
          clusters: [
            { name: "split-a", endpoints: [endpointOf(b1)], weight: 100 },
            { name: "split-b", endpoints: [endpointOf(b2)], weight: 0 },
          ],
        }),
        // xds:///nowhere -> a route configuration whose only virtual host matches another domain.
        { [TYPE.listener]: [apiListener("nowhere")], [TYPE.route]: [routeConfig("nowhere", "echo", { domains: ["elsewhere"] })] },
      ),
    });
    bootstrap = makeBootstrap({ serverUri: ads.address, nodeId: `harness-${kind}`, cluster: "harness" });
    const cold = await startClientSession(kind, { bootstrap, target: "xds:///echo", requireReady: true, env: { SIGNALBOX_COLD_START: "1" } });
    console.log(`[${kind}] cold session: start-up ${cold.startupMs} ms, then READY after ${cold.initialReady.ms} ms`);
    await cold.close();
    await warming;
    echo = await startClientSession(kind, { bootstrap, target: "xds:///echo", requireReady: true });
    expect(echo.prewarmed).toBe(true);
    console.log(`[${kind}] pre-warmed session: start-up ${echo.startupMs} ms, then READY after ${echo.initialReady.ms} ms`);
  });

  afterAll(async () => {
    await closeAllClientSessions();
    await ads?.stop();
    await stopBackends(backends ?? []);
  });

  it("one-shot runClient: every RPC answered, round robin roughly even", async () => {
    const r = await runClient(kind, { bootstrap, target: "xds:///echo", rpcs: 40, requireReady: true });
    console.log(`[${kind}] runClient: start-up ${r.startupMs} ms, READY after ${r.ready.ms} ms, result ${JSON.stringify(r.byBackend)}`);
    expect(r.errors).toEqual({});
    expect((r.byBackend.b1 ?? 0) + (r.byBackend.b2 ?? 0)).toBe(40);
    // The channel is READY as soon as one subchannel is; allow a little early skew.
    expect(share(r, "b1")).toBeGreaterThanOrEqual(0.25);
    expect(share(r, "b2")).toBeGreaterThanOrEqual(0.25);
  });

  it("session: concurrent RPCs, metadata reaches the backend", async () => {
    const before = b1.requests + b2.requests;
    const r = await echo.call(60, { "x-signalbox-test": kind }, { concurrency: 6 });
    expect(r.errors).toEqual({});
    expect(r.latenciesMs).toHaveLength(60);
    expect(share(r, "b1")).toBeGreaterThanOrEqual(0.3);
    expect(share(r, "b2")).toBeGreaterThanOrEqual(0.3);
    expect(b1.requests + b2.requests - before).toBe(60);
    expect(b1.lastMetadata?.["x-signalbox-test"]).toBe(kind);
    expect(await echo.state()).toBe("READY");
  });

  it("session: a failing backend shows up as status codes, not hangs", async () => {
    b1.setFailing(grpc.status.UNAVAILABLE);
    try {
      const r = await echo.call(20);
      expect(r.errors.UNAVAILABLE ?? 0).toBeGreaterThanOrEqual(6);
      expect(r.byBackend.b2 ?? 0).toBeGreaterThanOrEqual(6);
      expect(r.byBackend.b1).toBeUndefined();
      expect(r.errorMessages?.UNAVAILABLE).toContain("b1");
    } finally {
      b1.setFailing(null);
    }
  });

  it("session: traffic follows a pushed split change without restarting the client", async () => {
    const split = await startClientSession(kind, { bootstrap, target: "xds:///split", requireReady: true });
    try {
      const first = await split.call(20);
      expect(first).toMatchObject({ byBackend: { b1: 20 }, errors: {} });

      const changedAt = performance.now();
      ads.set(TYPE.route, [
        routeConfig("echo", "echo"),
        routeConfig("split", [
          { cluster: "split-a", weight: 20 },
          { cluster: "split-b", weight: 80 },
        ]),
        routeConfig("nowhere", "echo", { domains: ["elsewhere"] }),
      ]);
      const moved = await pollCalls(split, 50, (r) => errorCount(r) === 0 && share(r, "b2") >= 0.6, { withinMs: 2000, intervalMs: 20 });
      const tookMs = Math.round(performance.now() - changedAt);
      console.log(`[${kind}] split 100:0 -> 20:80 observed after ${tookMs} ms (${moved.attempts} polls): ${JSON.stringify(moved.byBackend)}`);
      expect(share(moved, "b2")).toBeLessThan(1);
      await ads.waitForAck(TYPE.route, undefined, 2000);
      expect(ads.nacks()).toEqual([]);
      expect(split.pid).not.toBe(echo.pid);
    } finally {
      await split.close();
    }
    expect(processAlive(split.pid)).toBe(false);
  });

  it("a broken route configuration yields errors within the per-RPC deadline", async () => {
    const started = performance.now();
    const s = await startClientSession(kind, { bootstrap, target: "xds:///nowhere", readyTimeoutMs: 0 });
    try {
      const r = await s.call(3, {}, { timeoutMs: 500 });
      expect(errorCount(r)).toBe(3);
      expect(r.byBackend).toEqual({});
      // grpc-js-xds keeps the RPC waiting for name resolution (DEADLINE_EXCEEDED);
      // C-core fails it at once (UNAVAILABLE: could not find VirtualHost ...).
      expect(Object.keys(r.errors).every((c) => c === "UNAVAILABLE" || c === "DEADLINE_EXCEEDED")).toBe(true);
    } finally {
      await s.close();
    }
    expect(performance.now() - started).toBeLessThan(10_000);
  });

  it("close() ends the child process", async () => {
    const pid = echo.pid;
    expect(processAlive(pid)).toBe(true);
    await echo.close();
    expect(processAlive(pid)).toBe(false);
    await expect(echo.call(1)).rejects.toThrow(/client .*(exited|closed)/);
  });
});
