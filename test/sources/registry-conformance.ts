/**
 * The RegistrySource conformance suite: what every registry source (the
 * database, Consul, ...) must do, phrased over a small driver that changes the
 * backend. Call `registrySourceConformance` inside a describe block.
 */
import { performance } from "node:perf_hooks";
import { afterEach, beforeEach, expect, it } from "vitest";
import type { Instance, RegistryState, ServiceProtocol } from "../../src/model/registry.ts";
import type { RegistrySource } from "../../src/sources/source.ts";
import { latencies, Recorder, sleep } from "./helpers.ts";

export interface ServiceInput {
  readonly name: string;
  readonly protocol?: ServiceProtocol;
  readonly port?: number;
}

export type InstanceInput = Pick<Instance, "id" | "service" | "address" | "port"> & Partial<Instance>;

export interface RegistryDriver {
  /** A new, not yet started source over the driver's backend. */
  source(): RegistrySource;
  /** Empties the backend. */
  reset(): Promise<void>;
  putService(service: ServiceInput): Promise<void>;
  putInstance(instance: InstanceInput): Promise<void>;
  removeInstance(id: string): Promise<void>;
  removeService(name: string): Promise<void>;
  /** Writes that change nothing visible (same values again). */
  touchWithoutChange(): Promise<void>;
}

export interface ConformanceOptions {
  /** Label for latency samples. */
  readonly label: string;
  /** Upper bound for backend change -> onChange, ms. */
  readonly maxLatencyMs: number;
}

export function registrySourceConformance(getDriver: () => RegistryDriver, options: ConformanceOptions): void {
  let source: RegistrySource | null = null;
  let driver: RegistryDriver;

  beforeEach(async () => {
    driver = getDriver();
    await driver.reset();
  });
  afterEach(async () => {
    await source?.stop();
    source = null;
  });

  async function started(): Promise<Recorder<RegistryState>> {
    const recorder = new Recorder<RegistryState>();
    source = driver.source();
    await source.start(recorder.onChange);
    return recorder;
  }

  it("delivers the full current state before start() resolves", async () => {
    await driver.putService({ name: "web", protocol: "http", port: 8080 });
    await driver.putInstance({ id: "web-2", service: "web", address: "10.0.0.2", port: 80 });
    await driver.putInstance({
      id: "web-1",
      service: "web",
      address: "10.0.0.1",
      port: 80,
      meshPort: 15001,
      labels: { version: "v1", canary: "" },
      region: "eu",
      zone: "eu-1a",
      weight: 3,
      health: "draining",
    });
    await driver.putService({ name: "db", protocol: "tcp", port: 5432 });
    const recorder = await started();

    expect(recorder.count).toBe(1);
    const state = recorder.latest;
    expect([...state.services.keys()]).toEqual(["db", "web"]);
    expect(state.services.get("db")).toEqual({ name: "db", protocol: "tcp", port: 5432, instances: [] });
    const web = state.services.get("web")!;
    expect(web.protocol).toBe("http");
    expect(web.port).toBe(8080);
    expect(web.instances.map((i) => i.id)).toEqual(["web-1", "web-2"]);
    expect(web.instances[0]).toEqual({
      id: "web-1",
      service: "web",
      address: "10.0.0.1",
      port: 80,
      meshPort: 15001,
      labels: { canary: "", version: "v1" },
      region: "eu",
      zone: "eu-1a",
      weight: 3,
      health: "draining",
    });
    expect(web.instances[1]).toMatchObject({ meshPort: null, labels: {}, weight: 1, health: "healthy" });

    const status = source!.status();
    expect(status).toMatchObject({ ready: true, degraded: false });
    expect(status.name).toBe(source!.name);
    expect(typeof status.revision).toBe("string");
  });

  it("delivers an empty registry as a valid state", async () => {
    const recorder = await started();
    expect(recorder.count).toBe(1);
    expect(recorder.latest.services.size).toBe(0);
    expect(source!.status().ready).toBe(true);
  });

  it(`reports inserts, updates and deletes within ${options.maxLatencyMs} ms`, async () => {
    await driver.putService({ name: "api" });
    const recorder = await started();

    const measure = async (label: string, write: () => Promise<void>, done: (s: RegistryState) => boolean) => {
      const waiting = recorder.next(done, options.maxLatencyMs * 3);
      const t0 = performance.now();
      await write();
      const { at } = await waiting;
      const ms = at - t0;
      latencies.push({ label: `${options.label} ${label}`, ms });
      expect(ms, `${label} latency`).toBeLessThan(options.maxLatencyMs);
    };

    await measure(
      "insert",
      () => driver.putInstance({ id: "api-1", service: "api", address: "10.1.0.1", port: 9000 }),
      (s) => s.services.get("api")?.instances.length === 1,
    );
    await measure(
      "update",
      () => driver.putInstance({ id: "api-1", service: "api", address: "10.1.0.1", port: 9000, health: "unhealthy" }),
      (s) => s.services.get("api")?.instances[0]?.health === "unhealthy",
    );
    await measure(
      "delete",
      () => driver.removeInstance("api-1"),
      (s) => s.services.get("api")?.instances.length === 0,
    );
    await measure(
      "delete service",
      () => driver.removeService("api"),
      (s) => !s.services.has("api"),
    );
  });

  it("does not call onChange when nothing visible changed", async () => {
    await driver.putService({ name: "quiet" });
    const recorder = await started();
    await driver.touchWithoutChange();
    await sleep(Math.min(1500, options.maxLatencyMs * 1.5));
    expect(recorder.count).toBe(1);
    // ...but still notices a real change afterwards.
    await driver.putService({ name: "quiet", port: 81 });
    await recorder.until((s) => s.services.get("quiet")?.port === 81);
  });

  it("stops calling onChange after stop()", async () => {
    const recorder = await started();
    await source!.stop();
    source = null;
    await driver.putService({ name: "after-stop" });
    await sleep(Math.min(1000, options.maxLatencyMs));
    expect(recorder.count).toBe(1);
  });
}
