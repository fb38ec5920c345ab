/**
 * The RegistrySource conformance suite: what every registry source (the
 * database, Consul, ...) must do, phrased over a small driver that changes the
 * backend. Call `registrySourceConformance` inside a describe block.
 *
 * Backends differ in what they can hold, so a driver states its capabilities
 * and how the source reports what was written; the behaviour under test
 * (complete state before start() resolves, an empty registry is a state,
 * changes within the latency bound, no call when nothing visible changed, no
 * call after stop()) is the same for all:
 * - `capabilities.emptyServices`: the database keeps a service without
 *   instances; Consul forgets a service with its last instance (and carries a
 *   service's protocol and port on its instances' meta), so for Consul every
 *   service in a test has an instance, and removing the last one removes it;
 * - `expectedInstance`: the database reports an instance as written; Consul
 *   reports it as `docs/consul.md` maps it (`node/serviceID` ids, meta as
 *   labels, the datacenter as the default region).
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

export interface RegistryCapabilities {
  /**
   * The backend keeps a service that has no instances, and the source delivers
   * it with `instances: []` (the database). When false (Consul), a service
   * exists while it has an instance: the suite gives every service one, and
   * expects removing the last instance to remove the service.
   */
  readonly emptyServices: boolean;
}

/** The database's capabilities, assumed when a driver states none. */
export const storedAsWritten: RegistryCapabilities = { emptyServices: true };

export interface RegistryDriver {
  /** What the backend can hold; default `storedAsWritten`. */
  readonly capabilities?: RegistryCapabilities;
  /**
   * The Instance the source reports for `instance`, written while its service
   * was last put as `service`. Default: the instance as written, with the
   * model's defaults (no mesh port, no labels, weight 1, healthy, no locality).
   */
  expectedInstance?(instance: InstanceInput, service: ServiceInput | undefined): Instance;
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

/** An instance as a backend that stores instances verbatim reports it. */
export function asWritten(instance: InstanceInput): Instance {
  return {
    meshPort: null,
    labels: {},
    region: "",
    zone: "",
    weight: 1,
    health: "healthy",
    ...instance,
  };
}

export function registrySourceConformance(getDriver: () => RegistryDriver, options: ConformanceOptions): void {
  let source: RegistrySource | null = null;
  let driver: RegistryDriver;
  const caps = () => driver.capabilities ?? storedAsWritten;
  /** The services put so far in this test, by name (for expected instances). */
  const services = new Map<string, ServiceInput>();
  const putService = async (service: ServiceInput) => {
    services.set(service.name, service);
    await driver.putService(service);
  };
  const expected = (instance: InstanceInput): Instance =>
    driver.expectedInstance?.(instance, services.get(instance.service)) ?? asWritten(instance);
  const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

  beforeEach(async () => {
    driver = getDriver();
    services.clear();
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
    await putService({ name: "web", protocol: "http", port: 8080 });
    const web2: InstanceInput = { id: "web-2", service: "web", address: "10.0.0.2", port: 80 };
    const web1: InstanceInput = {
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
    };
    await driver.putInstance(web2);
    await driver.putInstance(web1);
    await putService({ name: "db", protocol: "tcp", port: 5432 });
    const db1: InstanceInput = { id: "db-1", service: "db", address: "10.0.0.3", port: 5432 };
    if (!caps().emptyServices) await driver.putInstance(db1);
    const recorder = await started();

    expect(recorder.count).toBe(1);
    const state = recorder.latest;
    expect([...state.services.keys()]).toEqual(["db", "web"]);
    expect(state.services.get("db")).toEqual({
      name: "db",
      protocol: "tcp",
      port: 5432,
      instances: caps().emptyServices ? [] : [expected(db1)],
    });
    const web = state.services.get("web")!;
    expect(web.protocol).toBe("http");
    expect(web.port).toBe(8080);
    expect(web.instances.map((i) => i.id)).toEqual([expected(web1), expected(web2)].sort(byId).map((i) => i.id));
    const first = expected(web1);
    expect(web.instances.find((i) => i.id === first.id)).toEqual(first);
    // Without the driver's mapping: what the suite wrote must show as written.
    expect(first).toMatchObject({
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
    const second = expected(web2);
    expect(web.instances.find((i) => i.id === second.id)).toEqual(second);
    expect(second).toMatchObject({ meshPort: null, weight: 1, health: "healthy" });

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
    await putService({ name: "api" });
    // A backend without empty services keeps one instance throughout.
    const base = caps().emptyServices ? 0 : 1;
    if (base === 1) await driver.putInstance({ id: "api-0", service: "api", address: "10.1.0.2", port: 9000 });
    const recorder = await started();
    const api1: InstanceInput = { id: "api-1", service: "api", address: "10.1.0.1", port: 9000 };
    const api1Id = () => expected(api1).id;

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
      () => driver.putInstance(api1),
      (s) => s.services.get("api")?.instances.length === base + 1,
    );
    await measure(
      "update",
      () => driver.putInstance({ ...api1, health: "unhealthy" }),
      (s) => s.services.get("api")?.instances.find((i) => i.id === api1Id())?.health === "unhealthy",
    );
    await measure(
      "delete",
      () => driver.removeInstance("api-1"),
      (s) => s.services.get("api")?.instances.length === base,
    );
    await measure(
      "delete service",
      () => driver.removeService("api"),
      (s) => !s.services.has("api"),
    );
  });

  it("does not call onChange when nothing visible changed", async () => {
    await putService({ name: "quiet" });
    await driver.putInstance({ id: "quiet-1", service: "quiet", address: "10.2.0.1", port: 80 });
    const recorder = await started();
    await driver.touchWithoutChange();
    await sleep(Math.min(1500, options.maxLatencyMs * 1.5));
    expect(recorder.count).toBe(1);
    // ...but still notices a real change afterwards.
    await putService({ name: "quiet", port: 81 });
    await recorder.until((s) => s.services.get("quiet")?.port === 81);
  });

  it("stops calling onChange after stop()", async () => {
    const recorder = await started();
    await source!.stop();
    source = null;
    await putService({ name: "after-stop" });
    await driver.putInstance({ id: "after-stop-1", service: "after-stop", address: "10.3.0.1", port: 80 });
    await sleep(Math.min(1000, options.maxLatencyMs));
    expect(recorder.count).toBe(1);
  });
}
