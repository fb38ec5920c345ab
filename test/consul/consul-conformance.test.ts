/**
 * The shared RegistrySource conformance suite (test/sources/registry-conformance.ts),
 * run against the Consul source: on the Consul test server always, and on a real
 * Consul when CONSUL_HTTP_ADDR is set (skipped loudly otherwise).
 *
 * The driver writes with Consul's catalog API, one node per instance, and says
 * what Consul cannot hold (a service without instances) and how the source
 * reports an instance (docs/consul.md): id `node/serviceID`, tags and meta as
 * labels, the service's protocol and port as instance meta, region and zone as
 * node meta (the datacenter when unset), weight as `Weights`, unhealthy as a
 * critical check, draining as a service maintenance check.
 *
 * On a real Consul, shared with other tests and tools, every name gets a unique
 * prefix, the source watches only those names (`serviceFilter`), and a thin view
 * strips the prefix again from what it delivers (one delivery in, one out).
 */
import { afterAll, beforeAll, describe } from "vitest";
import type { Instance, RegistryState, Service } from "../../src/model/registry.ts";
import { ConsulRegistrySource, type ConsulSourceOptions } from "../../src/sources/consul/index.ts";
import type { RegistrySource, SourceStatus } from "../../src/sources/source.ts";
import { summarizeLatencies } from "../sources/helpers.ts";
import {
  type InstanceInput,
  type RegistryCapabilities,
  type RegistryDriver,
  registrySourceConformance,
  type ServiceInput,
} from "../sources/registry-conformance.ts";
import { type CheckStatus, type ConsulHandle, realConsulHandle, testServerHandle } from "./handle.ts";
import { uniquePrefix } from "./observer.ts";

/**
 * Each watch loop is rate-limited (a token bucket: burst 2, then one query per
 * `minLoopIntervalMs` = 1 s, as Consul advises for blocking-query loops). The
 * suite changes one service three times in quick succession, so the third change
 * may wait for a token: up to 1 s on top of the propagation itself.
 */
const MAX_LATENCY_MS = 1500;

class ConsulRegistryDriver implements RegistryDriver {
  readonly capabilities: RegistryCapabilities = { emptyServices: false };
  /** Service settings as last put (they travel on the instances' meta). */
  private readonly services = new Map<string, ServiceInput>();
  /** Instances as last put, and whether each carries a maintenance check. */
  private readonly instances = new Map<string, { input: InstanceInput; maintenance: boolean }>();
  private touches = 0;

  constructor(
    private readonly handle: ConsulHandle,
    /** "" on a Consul of our own; a unique prefix on a shared one. */
    private readonly prefix: string,
  ) {}

  private serviceName(name: string): string {
    return this.prefix === "" ? name : `${this.prefix}-${name}`;
  }

  private node(id: string): string {
    return this.prefix === "" ? `node-${id}` : `${this.prefix}-node-${id}`;
  }

  source(): RegistrySource {
    const options: ConsulSourceOptions = {
      address: this.handle.address,
      token: this.handle.token,
      datacenter: this.handle.datacenter,
      backoffInitialMs: 100,
      backoffMaxMs: 1000,
      initialSyncTimeoutMs: 5000,
      ...(this.prefix === "" ? {} : { serviceFilter: (name: string) => name.startsWith(`${this.prefix}-`) }),
    };
    const source = new ConsulRegistrySource(options);
    return this.prefix === "" ? source : new UnprefixedView(source, `${this.prefix}-`);
  }

  async reset(): Promise<void> {
    await this.handle.admin.cleanup();
    this.services.clear();
    this.instances.clear();
  }

  async putService(service: ServiceInput): Promise<void> {
    this.services.set(service.name, service);
    // Protocol and port are instance meta in Consul: rewrite the instances.
    for (const { input } of [...this.instances.values()]) {
      if (input.service === service.name) await this.putInstance(input);
    }
  }

  async putInstance(instance: InstanceInput): Promise<void> {
    if (instance.health === "unknown") throw new Error("Consul has no 'unknown' health");
    const previous = this.instances.get(instance.id);
    if (previous !== undefined && previous.input.service !== instance.service) await this.removeInstance(instance.id);
    const { tags, meta } = this.tagsAndMeta(instance);
    const nodeMeta: Record<string, string> = {};
    if (instance.region) nodeMeta["signalbox-region"] = instance.region;
    if (instance.zone) nodeMeta["signalbox-zone"] = instance.zone;
    const weight = instance.weight ?? 1;
    const draining = instance.health === "draining";
    const ttl: CheckStatus = instance.health === "unhealthy" ? "critical" : "passing";
    const node = this.node(instance.id);
    await this.handle.admin.register({
      node,
      nodeAddress: instance.address,
      nodeMeta,
      id: instance.id,
      service: this.serviceName(instance.service),
      address: instance.address,
      port: instance.port,
      tags,
      meta,
      weights: { Passing: weight, Warning: weight },
      checks: [
        { id: `${instance.id}-ttl`, status: ttl },
        // What `consul maint -enable -service=<id>` adds.
        ...(draining ? [{ id: `_service_maintenance:${instance.id}`, status: "critical" as const }] : []),
      ],
    });
    if (previous?.maintenance && !draining) {
      await this.handle.admin.removeCheck(node, `_service_maintenance:${instance.id}`);
    }
    this.instances.set(instance.id, { input: instance, maintenance: draining });
  }

  async removeInstance(id: string): Promise<void> {
    if (!this.instances.has(id)) return;
    await this.handle.admin.deregisterNode(this.node(id));
    this.instances.delete(id);
  }

  async removeService(name: string): Promise<void> {
    for (const { input } of [...this.instances.values()]) {
      if (input.service === name) await this.removeInstance(input.id);
    }
    this.services.delete(name);
  }

  /**
   * Writes Consul answers with a new index but nothing the mesh sees: the same
   * registration again (Consul ignores it), a new check output, and a node meta
   * key the source does not read.
   */
  async touchWithoutChange(): Promise<void> {
    this.touches += 1;
    for (const { input } of [...this.instances.values()]) {
      await this.putInstance(input);
      const node = this.node(input.id);
      const ttl: CheckStatus = input.health === "unhealthy" ? "critical" : "passing";
      await this.handle.admin.setCheck(node, `${input.id}-ttl`, input.id, ttl, `touched ${this.touches}`);
      const { tags, meta } = this.tagsAndMeta(input);
      const weight = input.weight ?? 1;
      await this.handle.admin.register({
        node,
        nodeAddress: input.address,
        nodeMeta: {
          ...(input.region ? { "signalbox-region": input.region } : {}),
          ...(input.zone ? { "signalbox-zone": input.zone } : {}),
          touched: String(this.touches),
        },
        id: input.id,
        service: this.serviceName(input.service),
        address: input.address,
        port: input.port,
        tags,
        meta,
        weights: { Passing: weight, Warning: weight },
      });
    }
  }

  expectedInstance(instance: InstanceInput, service: ServiceInput | undefined): Instance {
    const { tags, meta } = this.tagsAndMeta(instance, service);
    const labels: Record<string, string> = {};
    for (const t of tags) labels[t] = "";
    Object.assign(labels, meta);
    return {
      id: `${this.node(instance.id)}/${instance.id}`,
      service: instance.service,
      address: instance.address,
      port: instance.port,
      meshPort: instance.meshPort ?? null,
      labels,
      region: instance.region || this.handle.datacenter,
      zone: instance.zone ?? "",
      weight: instance.weight ?? 1,
      health: instance.health ?? "healthy",
    };
  }

  /** Labels with a value become meta, the others tags; the service's settings ride along as meta. */
  private tagsAndMeta(
    instance: InstanceInput,
    service = this.services.get(instance.service),
  ): { tags: string[]; meta: Record<string, string> } {
    const tags: string[] = [];
    const meta: Record<string, string> = {};
    for (const [k, v] of Object.entries(instance.labels ?? {})) {
      if (v === "") tags.push(k);
      else meta[k] = v;
    }
    if (service?.protocol !== undefined && service.protocol !== "http") meta.protocol = service.protocol;
    if (service?.port !== undefined && service.port !== 80) meta["signalbox-port"] = String(service.port);
    if (instance.meshPort) meta["signalbox-mesh-port"] = String(instance.meshPort);
    return { tags: tags.sort(), meta };
  }
}

/** Delivers the source's states with `prefix` taken off service names; passes the rest through. */
class UnprefixedView implements RegistrySource {
  readonly name: string;
  constructor(
    private readonly inner: RegistrySource,
    private readonly prefix: string,
  ) {
    this.name = inner.name;
  }

  start(onChange: (state: RegistryState) => void): Promise<void> {
    return this.inner.start((state) => onChange(this.strip(state)));
  }

  stop(): Promise<void> {
    return this.inner.stop();
  }

  status(): SourceStatus {
    return this.inner.status();
  }

  private strip(state: RegistryState): RegistryState {
    const cut = (name: string) => (name.startsWith(this.prefix) ? name.slice(this.prefix.length) : name);
    const services = new Map<string, Service>();
    for (const [name, svc] of state.services) {
      services.set(cut(name), {
        ...svc,
        name: cut(svc.name),
        instances: svc.instances.map((i) => ({ ...i, service: cut(i.service) })),
      });
    }
    return { services };
  }
}

function consulConformance(label: string, makeHandle: () => Promise<ConsulHandle>, prefix: () => string): void {
  let handle: ConsulHandle;
  let driver: ConsulRegistryDriver;
  beforeAll(async () => {
    handle = await makeHandle();
    driver = new ConsulRegistryDriver(handle, prefix());
  });
  afterAll(async () => {
    await handle?.admin.cleanup();
    await handle?.close();
    console.log(summarizeLatencies(label));
  });
  registrySourceConformance(() => driver, { label, maxLatencyMs: MAX_LATENCY_MS });
}

describe("Consul registry source: shared conformance suite, on the Consul test server", () => {
  consulConformance("consul test-server", testServerHandle, () => "");
});

const realAddress = process.env.CONSUL_HTTP_ADDR;
if (!realAddress) {
  console.warn(
    "\n*** SKIPPING the registry conformance suite against a REAL Consul: CONSUL_HTTP_ADDR is not set.\n" +
      "*** To run it: docker compose up -d consul && CONSUL_HTTP_ADDR=http://127.0.0.1:8500 npx vitest run test/consul\n",
  );
}

describe.skipIf(!realAddress)(
  `Consul registry source: shared conformance suite, on a real Consul (${realAddress ?? "SKIPPED: set CONSUL_HTTP_ADDR to run"})`,
  () => {
    consulConformance(
      "consul real",
      () => realConsulHandle(realAddress!, process.env.CONSUL_HTTP_TOKEN),
      () => `sbxconf${uniquePrefix().slice(3)}`,
    );
  },
);
