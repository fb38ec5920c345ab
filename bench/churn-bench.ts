/**
 * Endpoint churn (no network): after a full build of the 5,000-service mesh,
 * `--changes` single-instance changes in a row, each as the PostgreSQL source
 * delivers it (structurally shared) through SnapshotBuilder and the cache's
 * endpoint fast path. Long enough for several major garbage collections.
 *
 * Reports the wall time per change (the process does nothing else, so this is
 * the main thread's time, GC pauses included) and every major GC's pause:
 * what a proxy waits for when a collection lands in the middle of a push.
 *
 *   node --expose-gc --max-semi-space-size=64 --no-allocation-site-pretenuring --heap-growing-percent=100 --import tsx bench/churn-bench.ts [--services 5000] [--instances 20] [--changes 15000] [--json]
 */
import { constants, PerformanceObserver } from "node:perf_hooks";
import { pino } from "pino";
import type { RegistryState } from "../src/model/registry.ts";
import { SnapshotBuilder } from "../src/translate/incremental-snapshot.ts";
import { translate } from "../src/translate/translate.ts";
import { ResourceCache } from "../src/xds/cache.ts";
import { resourceGate } from "../src/xds/validation-gate.ts";
import { asServerProcess, flag, numberOption } from "./cli.ts";
import { APP_PORT, INBOUND_PORT, meshModel, meshRows, moveInstance, serviceName } from "./mesh.ts";
import { nearestRank, percentiles, type Percentiles } from "./stats.ts";

export interface ChurnResult {
  readonly services: number;
  readonly changes: number;
  readonly changeWallMs: Percentiles & { readonly p999: number };
  /** Changes that took longer than 5 ms and 20 ms of wall time. */
  readonly over5Ms: number;
  readonly over20Ms: number;
  /** The five slowest changes: [change number, wall ms]. */
  readonly slowest: readonly (readonly [number, number])[];
  readonly majorGcs: number;
  readonly majorGcPauseMs: Percentiles;
  readonly heapUsedMb: number;
}

export async function runChurnBench(services = 5000, instances = 20, changes = 15000): Promise<ChurnResult> {
  const model = meshModel(meshRows({ services, instances, dependencies: 10, routesPerService: 1 }));
  const builder = new SnapshotBuilder();
  const cache = new ResourceCache(translate, resourceGate(), pino({ level: "silent" }));
  for (let s = 0; s < services; s++) {
    const name = serviceName(s);
    cache.retain({ id: name, service: name, kind: "envoy", inboundPort: INBOUND_PORT, appPort: APP_PORT, outboundPort: 15001, userAgent: "envoy" });
  }
  cache.setSnapshot(builder.build(model.registry, model.rules));
  (globalThis as { gc?: () => void }).gc?.();

  const majorPauses: number[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      if ((entry as unknown as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) majorPauses.push(entry.duration);
    }
  });
  observer.observe({ entryTypes: ["gc"] });

  const wall: number[] = [];
  let registry: RegistryState = model.registry;
  for (let k = 1; k <= changes; k++) {
    registry = moveInstance(registry, serviceName(1 + ((k * 7919) % (services - 1))), k);
    const started = performance.now();
    cache.setSnapshot(builder.build(registry, model.rules));
    wall.push(performance.now() - started);
  }
  // GC entries are delivered asynchronously.
  await new Promise((resolve) => setTimeout(resolve, 50));
  observer.disconnect();
  return {
    services,
    changes,
    changeWallMs: { ...percentiles(wall), p999: nearestRank([...wall].sort((a, b) => a - b), 0.999) },
    over5Ms: wall.filter((ms) => ms > 5).length,
    over20Ms: wall.filter((ms) => ms > 20).length,
    slowest: wall.map((ms, i) => [i + 1, ms] as const).sort((a, b) => b[1] - a[1]).slice(0, 5),
    majorGcs: majorPauses.length,
    majorGcPauseMs: percentiles(majorPauses),
    heapUsedMb: process.memoryUsage().heapUsed / 1e6,
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  asServerProcess();
  const result = await runChurnBench(numberOption("services", 5000), numberOption("instances", 20), numberOption("changes", 15000));
  if (flag("json")) console.log(JSON.stringify(result));
  else {
    console.table({ "wall ms per change": result.changeWallMs, "major GC pause ms": result.majorGcPauseMs });
    console.log(result);
  }
}
