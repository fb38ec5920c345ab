/**
 * mesh.service_dependencies rows -> ServiceDependency[]. Pure. The CHECK
 * constraints guarantee DNS-label names; rows are deduplicated and sorted so the
 * parsed state compares equal whatever order the rows came in.
 */
import type { ServiceDependency } from "../../model/rules.ts";
import { compareText } from "../../model/order.ts";
import type { ServiceDependencyRow } from "./rows.ts";

export function parseDependencies(rows: readonly ServiceDependencyRow[]): ServiceDependency[] {
  const seen = new Set<string>();
  const out: ServiceDependency[] = [];
  for (const row of rows) {
    const key = `${row.service}\u0000${row.depends_on}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ service: row.service, dependsOn: row.depends_on });
  }
  return out.sort(byDependency);
}

function byDependency(a: ServiceDependency, b: ServiceDependency): number {
  return compareText(a.service, b.service) || compareText(a.dependsOn, b.dependsOn);
}
