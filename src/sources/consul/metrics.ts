/**
 * Prometheus view of a Consul source. Values are read from `status()` and
 * `stats()` at scrape time, so nothing in the watch loops touches metrics.
 */
import { Counter, Gauge, type Registry } from "prom-client";
import type { ConsulRegistrySource } from "./source.ts";

/** Registers the Consul source's gauges on `registry`. Call once per source. */
export function registerConsulMetrics(registry: Registry, source: ConsulRegistrySource): void {
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  gauge("signalbox_consul_degraded", "1 while the Consul source serves last known state because queries fail", () =>
    source.status().degraded ? 1 : 0,
  );
  gauge("signalbox_consul_ready", "1 once the Consul source delivered a complete catalog", () =>
    source.status().ready ? 1 : 0,
  );
  gauge("signalbox_consul_watched_services", "Consul services watched", () => source.stats().watchedServices);
  gauge("signalbox_consul_services", "Services the Consul source currently emits", () => source.stats().services);
  gauge("signalbox_consul_failing_watches", "Consul watches whose last query failed", () => source.stats().degradedWatches);
  gauge("signalbox_consul_queries_in_flight", "Consul health queries in flight", () => source.stats().inFlight);
  gauge("signalbox_consul_max_connections", "Bound on connections the source opens to Consul", () =>
    source.stats().maxConnections,
  );
  gauge("signalbox_consul_catalog_index", "Last X-Consul-Index of the catalog watch", () => source.stats().catalogIndex);
  gauge(
    "signalbox_consul_critical_checks",
    "Critical checks in the datacenter, as the change-hint watch last saw them (-1: not known yet, or hints off)",
    () => source.stats().criticalChecks,
  );
  // Counters mirror the source's cumulative counts: each scrape adds the delta.
  const seen = new Map<string, number>();
  const delta = (key: string, now: number): number => {
    const d = now - (seen.get(key) ?? 0);
    seen.set(key, now);
    return Math.max(0, d);
  };
  new Counter({
    name: "signalbox_consul_index_resets_total",
    help: "Times a watch saw the Consul index go backwards and restarted",
    registers: [registry],
    collect() {
      this.inc(delta("resets", source.stats().indexResets));
    },
  });
  const counter = (name: string, help: string, read: () => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.inc(delta(name, read()));
      },
    });
  counter(
    "signalbox_consul_hinted_reads_total",
    "Service reads made out of turn because a change hint (critical checks, catalog tags, located catalog change) named the service",
    () => source.stats().hintedReads,
  );
  counter(
    "signalbox_consul_locator_reads_total",
    "Reads of /v1/health/state/any made to locate a catalog change",
    () => source.stats().locatorReads,
  );
  counter("signalbox_consul_sweeps_total", "Priority sweeps after the catalog index moved", () => source.stats().sweeps);
  counter(
    "signalbox_consul_sweep_reads_total",
    "Service reads asked for by priority sweeps",
    () => source.stats().sweepReads,
  );
  new Counter({
    name: "signalbox_consul_queries_total",
    help: "Consul queries answered, by outcome (ok, unreachable, timeout, http, garbage, aborted)",
    labelNames: ["outcome"],
    registers: [registry],
    collect() {
      for (const [outcome, n] of Object.entries(source.stats().requests)) this.inc({ outcome }, delta(outcome, n));
    },
  });
}
