/** Re-parsing only the rule groups a read fetched again (IncrementalRuleParser). */
import { describe, expect, it } from "vitest";
import { IncrementalRuleParser } from "../../src/sources/postgres/incremental-rules.ts";
import { parseRules } from "../../src/sources/postgres/parse-rules.ts";
import { httpRouteRow } from "./helpers.ts";
import { patchedRouteRows } from "../../src/sources/postgres/load-rules.ts";
import type { HttpRouteDestinationRow, HttpRouteRow, RoutePatch, RuleRows, ServiceDependencyRow, SubsetRow } from "../../src/sources/postgres/rows.ts";

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

  it("keeps every other route's object when a route is removed from a whole read", () => {
    const parser = new IncrementalRuleParser();
    const before = parser.parse(routesReread(first, [route("1", "api"), route("2", "db"), route("3", "db"), route("4", "api")]));
    const after = parser.parse(routesReread(first, [route("1", "api"), route("3", "db"), route("4", "api")]));
    expect(after.httpRoutes.map((r) => r.id)).toEqual(["1", "3", "4"]);
    expect(after.httpRoutes[1]).toBe(before.httpRoutes[2]);
    expect(after.httpRoutes[2]).toBe(before.httpRoutes[3]);
  });
});

describe("IncrementalRuleParser with route patches", () => {
  /** A read through the route log: `ids` re-read, with these rows now. */
  const patch = (base: RuleRows, ids: string[], httpRoutes: HttpRouteRow[], httpRouteDestinations: HttpRouteDestinationRow[] = []): { rows: RuleRows; patch: RoutePatch } => {
    const routePatch: RoutePatch = { ids, httpRoutes, httpRouteDestinations, base };
    return { rows: { ...base, ...patchedRouteRows(routePatch) }, patch: routePatch };
  };

  it("gives what parseRules gives for the patched rows, parsing only the patched routes", () => {
    const parser = new IncrementalRuleParser();
    const base = { ...first, httpRoutes: [route("1", "api"), route("2", "db"), route("5", "db"), route("12", "api")] };
    const before = parser.parse(base);
    // Route 2 removed, 5 changed (and its split added), 7 and 30 added, 12 made malformed.
    const step = patch(base, ["2", "5", "7", "12", "30"], [route("5", "db", { priority: 3 }), route("7", "api"), route("12", "api", { path_match: "prefix", path: null }), route("30", "db")], [
      { route_id: "5", service: "db", subset: null, weight: 100 },
    ]);
    expect(step.rows.httpRoutes.map((r) => r.id)).toEqual(["1", "5", "7", "12", "30"]);
    const after = parser.parse(step.rows, step.patch);
    expect(after).toEqual(parseRules(step.rows));
    expect(after.httpRoutes[0]).toBe(before.httpRoutes[0]);
    expect(after.rejected.map((r) => `${r.kind}:${r.id}`)).toEqual(["http_route:12", "subset:api/broken"]);

  });

  it("reads no row but the patch's", () => {
    let reads = 0;
    const counted = (row: HttpRouteRow): HttpRouteRow => {
      const { headers, ...rest } = row;
      return Object.defineProperty({ ...rest }, "headers", {
        enumerable: true,
        get() {
          reads++;
          return headers;
        },
      }) as HttpRouteRow;
    };
    const parser = new IncrementalRuleParser();
    const base = { ...first, httpRoutes: ["1", "2", "3", "4"].map((id) => counted(route(id, "api"))) };
    parser.parse(base);
    expect(reads).toBe(4);
    const step = patch(base, ["3"], [route("3", "api", { priority: 9 })]);
    expect(parser.parse(step.rows, step.patch).httpRoutes.find((r) => r.id === "3")?.priority).toBe(9);
    expect(reads).toBe(4);
  });

  it("parses the rows whole when the patch was not made on the last rows parsed", () => {
    const parser = new IncrementalRuleParser();
    const base = { ...first, httpRoutes: [route("1", "api"), route("2", "db")] };
    parser.parse(base);
    // A patch on other rows than the parser saw last (as after a read it never parsed).
    const elsewhere = { ...base, httpRoutes: [route("1", "api"), route("2", "db"), route("3", "db")] };
    const step = patch(elsewhere, ["2"], [route("2", "db", { priority: 4 })]);
    const after = parser.parse(step.rows, step.patch);
    expect(after).toEqual(parseRules(step.rows));
    expect(after.httpRoutes.map((r) => r.id)).toEqual(["1", "2", "3"]);
  });
});
