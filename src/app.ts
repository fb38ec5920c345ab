import type { Logger } from "pino";
import { collectDefaultMetrics, Gauge, type Registry } from "prom-client";
import { AdminServer } from "./admin/admin-server.ts";
import { MeshPipeline } from "./control/mesh-pipeline.ts";
import type { RegistryState } from "./model/registry.ts";
import type { RegistrySource, RuleSource } from "./sources/source.ts";
import { translate } from "./translate/translate.ts";
import { ResourceCache, type ResourceGate } from "./xds/cache.ts";
import { XdsMetrics } from "./xds/metrics.ts";
import { XdsServer } from "./xds/server.ts";

/**
 * The composition root: sources -> pipeline -> cache -> xDS server, plus admin.
 * Everything that opens a port or a connection is started here and stopped here.
 */
export interface SignalboxOptions {
  readonly registries: readonly RegistrySource[];
  readonly mergeRegistries: (states: readonly RegistryState[]) => RegistryState;
  readonly rules: RuleSource;
  readonly gate: ResourceGate;
  readonly logger: Logger;
  readonly xdsHost?: string;
  readonly xdsPort: number;
  readonly adminHost?: string;
  readonly adminPort: number;
  readonly debounceMs?: number;
  readonly maxDelayMs?: number;
  /** Registers source-specific metrics on the server's Prometheus registry. */
  readonly registerMetrics?: (registry: Registry) => void;
  /** Extra work to do on stop (e.g. stopping an embedded database). */
  readonly onStop?: () => Promise<void>;
}

export interface RunningSignalbox {
  readonly xdsPort: number;
  readonly adminPort: number;
  readonly cache: ResourceCache;
  readonly pipeline: MeshPipeline;
  readonly xds: XdsServer;
  stop(): Promise<void>;
}

export async function startSignalbox(options: SignalboxOptions): Promise<RunningSignalbox> {
  const { logger } = options;
  const metrics = new XdsMetrics();
  collectDefaultMetrics({ register: metrics.registry, prefix: "signalbox_" });
  const cache = new ResourceCache(translate, options.gate, logger.child({ component: "cache" }));
  const xds = new XdsServer({ cache, metrics, logger: logger.child({ component: "xds" }) });
  const pipeline = new MeshPipeline({
    registries: options.registries,
    mergeRegistries: options.mergeRegistries,
    rules: options.rules,
    cache,
    metrics,
    logger: logger.child({ component: "pipeline" }),
    debounceMs: options.debounceMs ?? 50,
    maxDelayMs: options.maxDelayMs ?? 250,
  });

  new Gauge({
    name: "signalbox_source_degraded",
    help: "1 while a source cannot reach its backend and serves its last known state",
    labelNames: ["source"],
    registers: [metrics.registry],
    collect() {
      this.reset();
      for (const source of pipeline.sourceStatuses()) this.set({ source: source.name }, source.degraded ? 1 : 0);
    },
  });
  new Gauge({
    name: "signalbox_rules_rejected",
    help: "Rule rows refused (see mesh.rule_status or /v1/rules/rejected)",
    registers: [metrics.registry],
    collect() {
      this.set(pipeline.currentSnapshot()?.rejected.length ?? 0);
    },
  });

  options.registerMetrics?.(metrics.registry);

  const admin = new AdminServer({
    ready: () => pipeline.ready,
    sources: () => pipeline.sourceStatuses(),
    proxies: () => xds.directory.list(),
    rejectedRules: () => pipeline.currentSnapshot()?.rejected ?? [],
    invalidResources: () => cache.invalidResources(),
    metrics: metrics.registry,
  });
  // Admin first, so /healthz answers while sources connect.
  const adminPort = await admin.listen(options.adminHost ?? "0.0.0.0", options.adminPort);
  await pipeline.start();
  const xdsPort = await xds.listen(options.xdsHost ?? "0.0.0.0", options.xdsPort);
  logger.info({ xdsPort, adminPort }, "signalbox serving");

  return {
    xdsPort,
    adminPort,
    cache,
    pipeline,
    xds,
    async stop() {
      await xds.close();
      await pipeline.stop();
      await admin.close();
      await options.onStop?.();
    },
  };
}
