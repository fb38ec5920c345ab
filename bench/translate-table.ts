/**
 * The translation benchmark's result as a markdown table: printed by
 * translate-bench.ts on its own and by the fleet report after its tables.
 * Kept apart from translate-bench.ts so the fleet's parent process does not
 * load the translation code to print it.
 */
import { f0, f2 } from "./stats.ts";
import type { TranslateResult } from "./translate-bench.ts";

export function translationTable(t: TranslateResult): string[] {
  return [
    `Translation (${t.services} services x ${t.instances} instances, ${t.rules} rules, ${t.views} sidecar views, ${t.resources} distinct resources):`,
    "",
    "| step | result |",
    "| --- | ---: |",
    `| buildSnapshot (mesh-level rule checks) | ${f0(t.buildSnapshotMs)} ms |`,
    `| first full translation + encoding + validation, all views (cold process) | ${f0(t.fullTranslateMs)} ms wall, ${f0(t.fullTranslateCpuMs)} ms CPU |`,
    `| the same for a second mesh in a fresh cache (warm process) | ${f0(t.warmFullTranslateMs)} ms wall, ${f0(t.warmFullTranslateCpuMs)} ms CPU |`,
    `| one endpoint change (snapshot + cache fast path), process CPU median / p99 / max | ${f2(t.endpointChangeCpuMs.p50)} / ${f2(t.endpointChangeCpuMs.p99)} / ${f2(t.endpointChangeCpuMs.max)} ms |`,
    `| ... wall time (the main thread's own) median / p99 / max | ${f2(t.endpointChangeWallMs.p50)} / ${f2(t.endpointChangeWallMs.p99)} / ${f2(t.endpointChangeWallMs.max)} ms |`,
    `| as many changes again, steady state: process CPU median / p99 / max | ${f2(t.steadyEndpointChangeCpuMs.p50)} / ${f2(t.steadyEndpointChangeCpuMs.p99)} / ${f2(t.steadyEndpointChangeCpuMs.max)} ms |`,
    `| ... source side on a full reload (structural sharing of a freshly parsed registry) | ${f0(t.sourceShareCpuMs)} ms |`,
    `| one route change, the process's first (views that read it re-translated: ${t.ruleChangeViews} changed) CPU | ${f0(t.ruleChangeCpuMs)} ms |`,
    `| later route changes (other services), process CPU median / max | ${f0(t.steadyRuleChangeCpuMs.p50)} / ${f0(t.steadyRuleChangeCpuMs.max)} ms |`,
  ];
}
