import { join } from "node:path";
import type { Logger } from "pino";
import { startSignalbox, type RunningSignalbox, type SignalboxSources } from "../app.ts";
import type { RegistryState } from "../model/registry.ts";
import { consulOptionsFromConfig, ConsulRegistrySource, registerConsulMetrics } from "../sources/consul/index.ts";
import { startEmbeddedPostgres } from "../sources/embedded/index.ts";
import { mergeRegistries } from "../sources/merge-registry.ts";
import { PostgresStore } from "../sources/postgres/index.ts";
import type { RegistrySource } from "../sources/source.ts";
import { resourceGate } from "../xds/validation-gate.ts";
import { useServerBufferPool } from "./buffer-pool.ts";

export interface ServeOptions {
  readonly databaseUrl?: string;
  readonly dataDir: string;
  readonly xdsHost: string;
  readonly xdsPort: number;
  readonly adminHost: string;
  readonly adminPort: number;
  readonly consulAddr?: string;
  readonly consulToken?: string;
  readonly consulDatacenter?: string;
  readonly consulWait?: string;
  readonly consulMaxWatches?: number;
  readonly debounceMs: number;
  readonly maxDelayMs: number;
}

/**
 * PostgreSQL when a URL is given, otherwise the embedded store under the data
 * directory (same schema, same code path); Consul when an address is given.
 */
async function openSources(options: ServeOptions, logger: Logger): Promise<SignalboxSources> {
  let url = options.databaseUrl;
  let stopEmbedded: (() => Promise<void>) | undefined;
  if (!url) {
    const dir = join(options.dataDir, "db");
    logger.info({ dataDir: dir }, "no --database-url: using the embedded store");
    const embedded = await startEmbeddedPostgres({ dataDir: dir });
    url = embedded.url;
    stopEmbedded = () => embedded.stop();
  }
  const store = new PostgresStore({ connectionString: url, logger: logger.child({ component: "postgres" }) });
  const registries: RegistrySource[] = [store.registry];
  let consul: ConsulRegistrySource | undefined;
  // Flags were already merged with CONSUL_HTTP_ADDR etc. by the command line; the
  // environment is passed too for the settings only it carries (CONSUL_HTTP_SSL).
  const consulOptions = consulOptionsFromConfig(options, process.env);
  if (consulOptions) {
    consul = new ConsulRegistrySource({ ...consulOptions, logger });
    registries.push(consul);
  }
  return {
    registries,
    mergeRegistries: (states: readonly RegistryState[]) => {
      const [database, fromConsul] = states;
      if (!database) throw new Error("database registry missing");
      return fromConsul ? mergeRegistries(database, fromConsul) : database;
    },
    rules: store.rules,
    registerMetrics: (registry) => {
      if (consul) registerConsulMetrics(registry, consul);
    },
    close: async () => {
      await stopEmbedded?.();
    },
  };
}

/** `signalbox serve`. */
export function serve(options: ServeOptions, logger: Logger): Promise<RunningSignalbox> {
  useServerBufferPool();
  return startSignalbox({
    sources: () => openSources(options, logger),
    gate: resourceGate(),
    logger,
    xdsHost: options.xdsHost,
    xdsPort: options.xdsPort,
    adminHost: options.adminHost,
    adminPort: options.adminPort,
    debounceMs: options.debounceMs,
    maxDelayMs: options.maxDelayMs,
  });
}
