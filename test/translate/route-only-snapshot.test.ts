/**
 * The routes-only rebuild (src/translate/route-only-snapshot.ts) must give
 * exactly what buildSnapshot gives for the same registry and rules, down to
 * the order of routesByDestination, and keep unchanged parts as the last
 * snapshot's objects. Random route changes on a mesh with subsets (one
 * refused), destination- and source-level policies and refused routes; every
 * translation scenario too, with its own policies (some name routes, so the
 * builder must build those in full).
 */
import { describe, expect, it } from "vitest";
import type { RegistryState } from "../../src/model/registry.ts";
import type { HeaderMatch, HttpRoute, RuleRejection, RuleSet, Subset } from "../../src/model/rules.ts";
import { emptyClusterPolicies } from "../../src/model/cluster-policies.ts";
import { emptyRoutePolicies } from "../../src/model/route-policies.ts";
import { buildSnapshot } from "../../src/translate/build-snapshot.ts";
import { SnapshotBuilder } from "../../src/translate/incremental-snapshot.ts";
import { seededRandom } from "../support/seeded-random.ts";
import { instance, loadBalancing, registryOf, route, service } from "./builders.ts";
import { scenarios } from "./scenarios.ts";

const SERVICES = ["svc-a", "svc-b", "svc-c", "svc-d", "svc-e"];

const registry: RegistryState = registryOf(
  ...SERVICES.map((name, s) =>
    service(name, "http", 8080, [
      instance({ id: `${name}-1`, service: name, address: `10.0.${s}.1`, port: 8080, labels: { version: "v1" } }),
      instance({ id: `${name}-2`, service: name, address: `10.0.${s}.2`, port: 8080, labels: { version: "v2" } }),
    ]),
  ),
);

const subsets: Subset[] = [
  { service: "svc-a", name: "v1", selector: { version: "v1" } },
  { service: "svc-a", name: "v2", selector: { version: "v2" } },
  // Selects no instance: refused, and so is every route that sends traffic to it.
  { service: "svc-b", name: "v3", selector: { version: "v3" } },
];

const baseRules: RuleSet = {
  subsets,
  httpRoutes: [],
  rejected: [],
  routePolicies: {
    ...emptyRoutePolicies,
    timeouts: [{ id: "1", destination: "svc-a", source: null, routeId: null, timeoutMs: 1500, propagate: false }],
    drops: [{ id: "2", destination: "svc-c", source: "svc-d", routeId: null, percent: 5, httpStatus: 503, grpcStatus: 14 }],
  },
  clusterPolicies: { ...emptyClusterPolicies, loadBalancing: [loadBalancing({ id: "3", destination: "svc-c", algorithm: "least_request" })] },
};

/** A random route with id `id`: some are refused (unknown service, refused subset, bad header), some name a source. */
function randomRoute(next: () => number, id: number): HttpRoute {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
  const destination = next() < 0.05 ? "svc-gone" : pick(SERVICES);
  const headers: HeaderMatch[] = next() < 0.3 ? [{ name: next() < 0.1 ? "bad header" : "x-canary", kind: "exact", value: String(id), invert: false }] : [];
  const subset = next() < 0.3 ? pick(["v1", "v2", "v3"]) : null;
  const target = subset ? pick(["svc-a", "svc-b"]) : destination;
  return route({
    id: String(id),
    destination,
    source: next() < 0.3 ? pick(SERVICES) : null,
    priority: Math.floor(next() * 4),
    headers,
    path: next() < 0.5 ? { kind: "prefix", value: `/p${Math.floor(next() * 3)}` } : null,
    destinations: [{ service: target, subset, weight: 100 }],
  });
}

/** Rules whose routes are `routes` sorted by id, as the parser delivers them. */
function withRoutes(rules: RuleSet, routes: readonly HttpRoute[], rejected: readonly RuleRejection[] = rules.rejected): RuleSet {
  return { ...rules, httpRoutes: [...routes].sort((a, b) => Number(a.id) - Number(b.id)), rejected };
}

function expectSameAsFull(snapshot: ReturnType<SnapshotBuilder["build"]>, registry: RegistryState, rules: RuleSet, what: string): void {
  const full = buildSnapshot(registry, rules);
  expect(snapshot, what).toEqual(full);
  expect([...snapshot.routesByDestination.keys()], `${what}: destination order`).toEqual([...full.routesByDestination.keys()]);
}

describe("routes-only snapshots", () => {
  it("equal buildSnapshot's after every random route change, and take the short path", () => {
    for (let seed = 1; seed <= 40; seed++) {
      const next = seededRandom(seed);
      const builder = new SnapshotBuilder();
      let nextId = 1;
      let routes: HttpRoute[] = Array.from({ length: 12 }, () => randomRoute(next, nextId++));
      let rules = withRoutes(baseRules, routes);
      builder.build(registry, rules);
      for (let step = 0; step < 25; step++) {
        const roll = next();
        let what: string;
        if (roll < 0.3 || routes.length === 0) {
          const added = Array.from({ length: 1 + Math.floor(next() * 3) }, () => randomRoute(next, nextId++));
          routes = [...routes, ...added];
          what = `added ${added.map((r) => r.id).join(",")}`;
        } else if (roll < 0.55) {
          const gone = routes[Math.floor(next() * routes.length)]!;
          routes = routes.filter((r) => r !== gone);
          what = `removed ${gone.id}`;
        } else if (roll < 0.85) {
          const at = Math.floor(next() * routes.length);
          const edited = { ...randomRoute(next, 0), id: routes[at]!.id };
          routes = routes.map((r, i) => (i === at ? edited : r));
          what = `edited ${edited.id}`;
        } else if (roll < 0.95) {
          // An equal copy (a source that does not share structure) and a parse rejection of a row that is not listed.
          const at = Math.floor(next() * routes.length);
          routes = routes.map((r, i) => (i === at ? { ...r } : r));
          what = `copied ${routes[at]!.id}, with a parse rejection`;
          rules = { ...rules, rejected: [{ kind: "http_route", id: String(nextId++), message: "http route: parse problem" }] };
        } else {
          routes = [...routes].reverse();
          what = "the same routes in another order";
        }
        const previous = builder.build(registry, rules);
        rules = withRoutes(rules, routes);
        if (what === "the same routes in another order") rules = { ...rules, httpRoutes: routes };
        const snapshot = builder.build(registry, rules);
        expectSameAsFull(snapshot, registry, rules, `seed ${seed} step ${step}: ${what}`);
        if (what.startsWith("copied") || what.startsWith("the same routes")) expect(snapshot.routesByDestination, what).toBe(previous.routesByDestination);
        expect(snapshot.subsets).toBe(previous.subsets);
        expect(snapshot.routePolicies).toBe(previous.routePolicies);
        expect(snapshot.clusterPolicies).toBe(previous.clusterPolicies);
        // A list of the same route objects is the same list.
        for (const [destination, list] of previous.routesByDestination) {
          const now = snapshot.routesByDestination.get(destination);
          if (now && now.length === list.length && now.every((r, i) => r === list[i])) expect(now, `${what}: ${destination} kept`).toBe(list);
        }
      }
      expect(builder.counts.full, `seed ${seed}`).toBe(1);
      expect(builder.counts.routesOnly, `seed ${seed}`).toBeGreaterThan(20);
    }
  });

  it("builds in full when a policy names or extends a route, another rule changed too, a parse rejection names a listed route, or the registry changed", () => {
    const next = seededRandom(7);
    const routes = Array.from({ length: 8 }, (_, i) => randomRoute(next, i + 1));
    // Route 1, edited: every case below changes it, beside what the case names.
    const edited = routes.map((r) => (r.id === "1" ? { ...r, priority: r.priority + 1 } : r));
    const withTimeout = { ...baseRules, routePolicies: { ...baseRules.routePolicies!, timeouts: [{ id: "9", destination: routes[0]!.destination, source: null, routeId: "1", timeoutMs: 10, propagate: false }] } };
    const extension = { routeId: "1", prefixRewrite: "/v2/", hostRewrite: null, headerEdits: [], redirect: null, directResponse: null, mirrors: [], hasDestinationRows: true };
    const withExtension = { ...baseRules, routePolicies: { ...baseRules.routePolicies!, routeExtensions: [extension] } };
    const cases: { what: string; before: RuleSet; registry?: RegistryState; after: RuleSet }[] = [
      { what: "a route-level timeout", before: withRoutes(withTimeout, routes), after: withRoutes(withTimeout, edited) },
      { what: "a route with an extension", before: withRoutes(withExtension, routes), after: withRoutes(withExtension, edited) },
      { what: "a subset removed as well", before: withRoutes(baseRules, routes), after: withRoutes({ ...baseRules, subsets: subsets.slice(1) }, edited) },
      {
        what: "a destination-level policy changed as well",
        before: withRoutes(baseRules, routes),
        after: withRoutes({ ...baseRules, routePolicies: { ...baseRules.routePolicies!, timeouts: [] } }, edited),
      },
      {
        what: "a listed route refused at parse",
        before: withRoutes(baseRules, routes),
        after: withRoutes(baseRules, edited, [{ kind: "http_route", id: "1", message: "http route 1: mesh.http_route_rewrites: bad" }]),
      },
      {
        what: "a new service beside the edit",
        before: withRoutes(baseRules, routes),
        registry: registryOf(...registry.services.values(), service("svc-z", "http", 80, [])),
        after: withRoutes(baseRules, edited),
      },
    ];
    for (const { what, before, after, registry: changed } of cases) {
      const builder = new SnapshotBuilder();
      builder.build(registry, before);
      expectSameAsFull(builder.build(changed ?? registry, after), changed ?? registry, after, what);
      expect(builder.counts, what).toMatchObject({ full: 2, routesOnly: 0 });
    }
  });

  it("equal buildSnapshot's when each route of a translation scenario is removed and put back", () => {
    for (const scenario of scenarios) {
      const builder = new SnapshotBuilder();
      builder.build(scenario.registry, scenario.rules);
      for (const gone of scenario.rules.httpRoutes) {
        for (const rules of [{ ...scenario.rules, httpRoutes: scenario.rules.httpRoutes.filter((r) => r !== gone) }, scenario.rules]) {
          expectSameAsFull(builder.build(scenario.registry, rules), scenario.registry, rules, `${scenario.name}: route ${gone.id}`);
        }
      }
    }
  });
});
