/**
 * Translation cost (no network): a mesh of 5,000 services x 20 instances with
 * 5,000 rules, one sidecar view per service (each declaring 10 dependencies).
 *
 *  - full build: buildSnapshot, then translate, encode and validate (Envoy's
 *    field rules) every view, as the cache does for the first snapshot; once
 *    as the first work of a fresh process (cold: V8 has compiled nothing yet)
 *    and once more, for a second mesh of the same shape (distinct objects, so
 *    no memo carries over) in a fresh cache, with the code already compiled
 *    (warm: what a running server pays to translate the mesh from scratch);
 *  - one endpoint change: one instance moves; SnapshotBuilder + cache fast path;
 *    `--endpoint-changes` of them right after the build, then as many again
 *    (the steady state: code compiled, the build's garbage collected);
 *  - rule changes: a route is added, delivered and built as in the server
 *    (rules shared with the last delivery, SnapshotBuilder); the views that
 *    read the service's routes are re-translated from reused pieces, the
 *    changed ones re-encoded. The process's first, then 5 more on other
 *    services (the steady state).
 *
 * CPU is process.cpuUsage() of this process around each step. Prints a table
 * (translate-table.ts; `--json`: the raw numbers). Run alone:
 *   node --expose-gc --max-semi-space-size=64 --no-allocation-site-pretenuring --heap-growing-percent=100 --import tsx bench/translate-bench.ts [--services 5000] [--instances 20] [--endpoint-changes 20] [--json]
 */
import { setTimeout } from "node:timers/promises";
import { pino } from "pino";
import type { RegistryState } from "../src/model/registry.ts";
import type { MeshSnapshot } from "../src/model/snapshot.ts";
import { shareStructure } from "../src/model/share.ts";
import { SnapshotBuilder } from "../src/translate/incremental-snapshot.ts";
import { translate } from "../src/translate/translate.ts";
import { ResourceCache } from "../src/xds/cache.ts";
import { resourceGate } from "../src/xds/validation-gate.ts";
import { asServerProcess, flag, numberOption } from "./cli.ts";
import { percentiles, type Percentiles } from "./stats.ts";
import { translationTable } from "./translate-table.ts";
import { APP_PORT, applyChange, endpointChange, INBOUND_PORT, meshModel, meshRows, moveInstance, ruleChange, serviceName, type MeshSpec } from "./mesh.ts";

export interface TranslateResult {
  readonly services: number;
  readonly instances: number;
  readonly rules: number;
  readonly views: number;
  readonly resources: number;
  readonly buildSnapshotMs: number;
  readonly fullTranslateMs: number;
  readonly fullTranslateCpuMs: number;
  /** The same full build in a process whose code is already compiled (a second mesh, fresh cache). */
  readonly warmFullTranslateMs: number;
  readonly warmFullTranslateCpuMs: number;
  /**
   * Process CPU per change: every thread, so V8's background threads (JIT
   * compilation, concurrent marking and sweeping) count whenever they run.
   */
  readonly endpointChangeCpuMs: Percentiles;
  /** Wall time per change: the main thread's own time (this process does nothing else meanwhile). */
  readonly endpointChangeWallMs: Percentiles;
  /** The same for as many changes again, after those (steady state: code compiled, the build's garbage collected). */
  readonly steadyEndpointChangeCpuMs: Percentiles;
  readonly steadyEndpointChangeWallMs: Percentiles;
  readonly endpointChangeViewsPatched: number;
  readonly sourceShareCpuMs: number;
  readonly ruleChangeCpuMs: number;
  /** Views whose content the rule change changed (their streams get a push). */
  readonly ruleChangeViews: number;
  /** Rule changes after the first, process CPU (each re-translates the views that read its service's routes). */
  readonly steadyRuleChangeCpuMs: Percentiles;
}

/** Rule changes measured after the process's first one. */
const STEADY_RULE_CHANGES = 5;

/**
 * A full collection, then a pause: a forced collection leaves sweeping to
 * V8's background threads, and CPU measured right after it would count that
 * work as the next step's (tens of milliseconds after a full build).
 */
async function collectGarbage(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return;
  gc();
  await setTimeout(SETTLE_AFTER_GC_MS);
}

const SETTLE_AFTER_GC_MS = 250;

function cpuMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}

export async function runTranslateBench(services = 5000, instances = 20, endpointChanges = 20): Promise<TranslateResult> {
  const spec: MeshSpec = { services, instances, dependencies: 10, routesPerService: 1 };
  // The first build of the process (cold), on its own mesh, released afterwards
  // as a server releases a replaced translation.
  const cold = await firstBuild(spec);
  // The same shape again, as new objects (nothing memoized on the first mesh
  // applies); the rest of the benchmark works on this second mesh.
  let rows = meshRows(spec);
  const model = meshModel(rows);
  const builder = new SnapshotBuilder();
  const warm = await fullBuild(builder.build(model.registry, model.rules), services);
  const cache = warm.cache;
  let c: number;

  // One endpoint change at a time, as the PostgreSQL source delivers it
  // (structurally shared): `endpointChanges` right after the build (V8 is still
  // compiling the fast path and collecting what the build left), then as many
  // more in a steady state.
  const samples: number[] = [];
  const wallSamples: number[] = [];
  const steadySamples: number[] = [];
  const steadyWallSamples: number[] = [];
  let patched = 0;
  let registry: RegistryState = model.registry;
  for (let k = 1; k <= 2 * endpointChanges + 1; k++) {
    const service = serviceName(1 + ((k * 7919) % (services - 1)));
    const next = moveInstance(registry, service, k);
    const before = cache.stats().endpointPatches;
    const started = performance.now();
    c = cpuMs();
    cache.setSnapshot(builder.build(next, model.rules));
    const spent = cpuMs() - c;
    const wall = performance.now() - started;
    if (cache.stats().endpointPatches !== before + 1) throw new Error("endpoint change did not take the fast path");
    if (k > endpointChanges + 1) {
      steadySamples.push(spent);
      steadyWallSamples.push(wall);
    } else if (k > 1) {
      // The very first change warms up code paths.
      samples.push(spent);
      wallSamples.push(wall);
    }
    registry = next;
    patched = cache.viewCount;
  }

  // What the source spends to find what changed: share a freshly parsed registry with the last one.
  rows = applyChange(rows, endpointChange(serviceName(1), 999));
  const fresh = meshModel(rows).registry;
  await collectGarbage();
  c = cpuMs();
  shareStructure(registry, fresh);
  const sourceShareCpuMs = cpuMs() - c;

  // Rule changes: each a route for a service that 1 in 10 services call. The rules
  // arrive as the PostgreSQL source delivers them (unchanged parts shared with
  // the last delivery) and go through the same SnapshotBuilder as in the server.
  // The first is the process's first rule change; then as many again, on other
  // services, show what a rule change costs a running server.
  let ruleChangeViews = 0;
  cache.onChange((_, changed) => void (ruleChangeViews = changed?.size ?? services));
  const ruleSamples: number[] = [];
  let ruleChangeViewsFirst = 0;
  let rules = model.rules;
  for (let k = 0; k <= STEADY_RULE_CHANGES; k++) {
    rows = applyChange(rows, ruleChange(serviceName(3 + 10 * k), k + 1));
    rules = shareStructure(rules, meshModel(rows).rules);
    await collectGarbage();
    c = cpuMs();
    cache.setSnapshot(builder.build(registry, rules));
    ruleSamples.push(cpuMs() - c);
    if (k === 0) ruleChangeViewsFirst = ruleChangeViews;
  }

  return {
    services,
    instances,
    rules: model.rules.httpRoutes.length,
    views: services,
    resources: cold.resources,
    buildSnapshotMs: cold.buildSnapshotMs,
    fullTranslateMs: cold.wallMs,
    fullTranslateCpuMs: cold.cpuMs,
    warmFullTranslateMs: warm.wallMs,
    warmFullTranslateCpuMs: warm.cpuMs,
    endpointChangeCpuMs: percentiles(samples),
    endpointChangeWallMs: percentiles(wallSamples),
    steadyEndpointChangeCpuMs: percentiles(steadySamples),
    steadyEndpointChangeWallMs: percentiles(steadyWallSamples),
    endpointChangeViewsPatched: patched,
    sourceShareCpuMs,
    ruleChangeCpuMs: ruleSamples[0] ?? NaN,
    ruleChangeViews: ruleChangeViewsFirst,
    steadyRuleChangeCpuMs: percentiles(ruleSamples.slice(1)),
  };
}

/** buildSnapshot and the full build of a mesh of `spec`, as the first work of the process. */
async function firstBuild(spec: MeshSpec): Promise<{ buildSnapshotMs: number; wallMs: number; cpuMs: number; resources: number }> {
  const model = meshModel(meshRows(spec));
  const t = performance.now();
  const snapshot = new SnapshotBuilder().build(model.registry, model.rules);
  const buildSnapshotMs = performance.now() - t;
  const { cache, wallMs, cpuMs } = await fullBuild(snapshot, spec.services);
  return { buildSnapshotMs, wallMs, cpuMs, resources: cache.stats().resourcesEncoded };
}

/** A fresh cache holding one sidecar view per service, given its first snapshot; timed. */
async function fullBuild(snapshot: MeshSnapshot, services: number): Promise<{ cache: ResourceCache; wallMs: number; cpuMs: number }> {
  const cache = new ResourceCache(translate, resourceGate(), pino({ level: "silent" }));
  for (let s = 0; s < services; s++) {
    const name = serviceName(s);
    cache.retain({ id: name, service: name, kind: "envoy", inboundPort: INBOUND_PORT, appPort: APP_PORT, outboundPort: 15001, userAgent: "envoy" });
  }
  await collectGarbage();
  const t = performance.now();
  const c = cpuMs();
  cache.setSnapshot(snapshot);
  return { cache, wallMs: performance.now() - t, cpuMs: cpuMs() - c };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  asServerProcess();
  const result = await runTranslateBench(numberOption("services", 5000), numberOption("instances", 20), numberOption("endpoint-changes", 20));
  if (flag("json")) {
    if (process.send) process.send({ type: "result", result }, () => process.exit(0));
    else console.log(JSON.stringify(result));
  } else {
    console.log(translationTable(result).join("\n"));
  }
}
