/** Re-parsing only the rule groups a read fetched again (IncrementalRuleParser). */
import { describe, expect, it } from "vitest";
import { IncrementalRuleParser } from "../../src/sources/postgres/incremental-rules.ts";
import { parseRules } from "../../src/sources/postgres/parse-rules.ts";
import { httpRouteRow } from "./helpers.ts";
import type { HttpRouteDestinationRow, HttpRouteRow, RuleRows, ServiceDependencyRow, SubsetRow } from "../../src/sources/postgres/rows.ts";

const route = (id: string, destination: string, over: Partial<HttpRouteRow> = {}): HttpRouteRow => httpRouteRow({ id, destination, ...over });

const subsets: SubsetRow[] = [
  { service: "api", name: "v1", selector: { version: "v1" } },
  { service: "api", name: "broken", selector: "not an object" },
];
const dependencies: ServiceDependencyRow[] = [{ service: "web", depends_on: "api" }];
const destinations: HttpRouteDestinationRow[] = [
  { route_id: "1", service: "api", subset: "v1", weight: 90 },
  { route_id: "1", service: "api", subset: null, weight: 10 },
];
const first: RuleRows = {
  subsets,
  httpRoutes: [route("1", "api"), route("2", "db", { timeout_ms: 100 })],
  httpRouteDestinations: destinations,
  serviceDependencies: dependencies,
};

/** The rows a read of only the routes group gives: new route arrays, the other groups' arrays as they were. */
const routesReread = (rows: RuleRows, httpRoutes: HttpRouteRow[]): RuleRows => ({ ...rows, httpRoutes, httpRouteDestinations: [...rows.httpRouteDestinations] });

describe("IncrementalRuleParser", () => {
  it("gives what parseRules gives, every time", () => {
    const parser = new IncrementalRuleParser();
    const second = routesReread(first, [route("1", "api"), route("2", "db", { timeout_ms: 250 }), route("3", "db", { path_match: "prefix", path: null })]);
    const third = { ...second, subsets: [subsets[0]!] };
    for (const rows of [first, second, third, first]) expect(parser.parse(rows)).toEqual(parseRules(rows));
  });

  it("takes over the groups that were not read again, and keeps unchanged routes, as the same objects", () => {
    const parser = new IncrementalRuleParser();
    const before = parser.parse(first);
    const after = parser.parse(routesReread(first, [route("1", "api"), route("2", "db", { timeout_ms: 250 })]));
    expect(after.subsets).toBe(before.subsets);
    expect(after.dependencies).toBe(before.dependencies);
    expect(after.httpRoutes[0]).toBe(before.httpRoutes[0]);
    expect(after.httpRoutes[1]).not.toBe(before.httpRoutes[1]);
    expect(after.httpRoutes[1]?.timeoutMs).toBe(250);
  });

  it("does not parse a group's rows again while they are the same arrays", () => {
    let reads = 0;
    const counted: SubsetRow[] = subsets.map((row) => ({
      service: row.service,
      name: row.name,
      get selector() {
        reads++;
        return row.selector;
      },
    }));
    const parser = new IncrementalRuleParser();
    parser.parse({ ...first, subsets: counted });
    expect(reads).toBe(counted.length);
    parser.parse(routesReread({ ...first, subsets: counted }, [route("1", "api")]));
    expect(reads).toBe(counted.length);
    parser.parse({ ...first, subsets: [...counted] });
    expect(reads).toBe(2 * counted.length);
  });

  it("keeps the rejections of groups not read again beside the new ones of the groups that were", () => {
    const parser = new IncrementalRuleParser();
    expect(parser.parse(first).rejected.map((r) => `${r.kind}:${r.id}`)).toEqual(["subset:api/broken"]);
    const badRoute = routesReread(first, [route("1", "api"), route("2", "db", { path_match: "prefix", path: null })]);
    expect(parser.parse(badRoute).rejected.map((r) => `${r.kind}:${r.id}`)).toEqual(["http_route:2", "subset:api/broken"]);
    // The route is mended; the subset is still broken.
    expect(parser.parse(routesReread(badRoute, first.httpRoutes as HttpRouteRow[])).rejected.map((r) => `${r.kind}:${r.id}`)).toEqual(["subset:api/broken"]);
  });

  it("returns the last rule set itself when a group is read again with equal rows", () => {
    const parser = new IncrementalRuleParser();
    const before = parser.parse(first);
    expect(parser.parse(routesReread(first, first.httpRoutes.map((row) => ({ ...row }))))).toBe(before);
  });
});
