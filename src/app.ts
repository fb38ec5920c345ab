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
export interface SignalboxSources {
  readonly registries: readonly RegistrySource[];
  /** Joins the registries' states, in the order given, into one. */
  readonly mergeRegistries: (states: readonly RegistryState[]) => RegistryState;
  readonly rules: RuleSource;
  /** Registers source-specific metrics on the server's Prometheus registry. */
  readonly registerMetrics?: (registry: Registry) => void;
  /** Releases what opening the sources acquired (e.g. an embedded database). */
  readonly close?: () => Promise<void>;
}

export interface SignalboxOptions {
  /** The sources, or how to open them: opened after the admin API listens, so /healthz answers meanwhile. */
  readonly sources: SignalboxSources | (() => Promise<SignalboxSources>);
  readonly gate: ResourceGate;
  readonly logger: Logger;
  readonly xdsHost?: string;
  readonly xdsPort: number;
  readonly adminHost?: string;
  readonly adminPort: number;
  readonly debounceMs?: number;
  readonly maxDelayMs?: number;
  /** Push slicing: streams refreshed per event-loop turn, and for how long (see PushScheduler). */
  readonly pushBatchSize?: number;
  readonly pushSliceMs?: number;
}

export interface RunningSignalbox {
  readonly xdsPort: number;
  readonly adminPort: number;
  readonly cache: ResourceCache;
  readonly pipeline: MeshPipeline;
  readonly xds: XdsServer;
  readonly metrics: XdsMetrics;
  stop(): Promise<void>;
}

export async function startSignalbox(options: SignalboxOptions): Promise<RunningSignalbox> {
  const { logger } = options;
  const metrics = new XdsMetrics();
  collectDefaultMetrics({ register: metrics.registry, prefix: "signalbox_" });
  const cache = new ResourceCache(translate, options.gate, logger.child({ component: "cache" }));
  const xds = new XdsServer({
    cache,
    metrics,
    logger: logger.child({ component: "xds" }),
    ...(options.pushBatchSize !== undefined ? { pushBatchSize: options.pushBatchSize } : {}),
    ...(options.pushSliceMs !== undefined ? { pushSliceMs: options.pushSliceMs } : {}),
  });
  let pipeline: MeshPipeline | null = null;

  const admin = new AdminServer({
    ready: () => pipeline?.ready ?? false,
    sources: () => pipeline?.sourceStatuses() ?? [],
    proxies: () => xds.directory.list(),
    rejectedRules: () => pipeline?.currentSnapshot()?.rejected ?? [],
    invalidResources: () => cache.invalidResources(),
    metrics: metrics.registry,
  });
  const adminPort = await admin.listen(options.adminHost ?? "0.0.0.0", options.adminPort);
  logger.info({ adminPort }, "admin API listening");

  let sources: SignalboxSources | null = null;
  try {
    sources = typeof options.sources === "function" ? await options.sources() : options.sources;
    const running = new MeshPipeline({
      registries: sources.registries,
      mergeRegistries: sources.mergeRegistries,
      rules: sources.rules,
      cache,
      metrics,
      logger: logger.child({ component: "pipeline" }),
      debounceMs: options.debounceMs ?? 50,
      maxDelayMs: options.maxDelayMs ?? 250,
    });
    pipeline = running;
    registerPipelineMetrics(metrics.registry, running);
    sources.registerMetrics?.(metrics.registry);
    await running.start();
  } catch (error) {
    await admin.close();
    await sources?.close?.();
    throw error;
  }
  const xdsPort = await xds.listen(options.xdsHost ?? "0.0.0.0", options.xdsPort);
  logger.info({ xdsPort, adminPort }, "signalbox serving");

  const activePipeline = pipeline;
  const activeSources = sources;
  return {
    xdsPort,
    adminPort,
    cache,
    pipeline: activePipeline,
    xds,
    metrics,
    async stop() {
      await xds.close();
      await activePipeline.stop();
      await admin.close();
      await activeSources.close?.();
    },
  };
}

function registerPipelineMetrics(registry: Registry, pipeline: MeshPipeline): void {
  new Gauge({
    name: "signalbox_source_degraded",
    help: "1 while a source cannot reach its backend and serves its last known state",
    labelNames: ["source"],
    registers: [registry],
    collect() {
      this.reset();
      for (const source of pipeline.sourceStatuses()) this.set({ source: source.name }, source.degraded ? 1 : 0);
    },
  });
  new Gauge({
    name: "signalbox_rules_rejected",
    help: "Rule rows refused (see mesh.rule_status or /v1/rules/rejected)",
    registers: [registry],
    collect() {
      this.set(pipeline.currentSnapshot()?.rejected.length ?? 0);
    },
  });
}
