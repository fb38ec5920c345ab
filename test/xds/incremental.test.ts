/// <reference types="vite/client" />
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { RegistryState, Service } from "../../src/model/registry.ts";
import type { RuleSet } from "../../src/model/rules.ts";
import { SnapshotBuilder } from "../../src/translate/incremental-snapshot.ts";
import { translate } from "../../src/translate/translate.ts";
import { ResourceCache, type CacheStats } from "../../src/xds/cache.ts";
import { fingerprint, reference } from "./fingerprint.ts";
import { scenarios, type Scenario } from "../translate/scenarios.ts";

/**
 * The cache's shortcuts (endpoint fast path, views kept across snapshots,
 * translation pieces reused across snapshots by their inputs) must give exactly
 * what a fresh translation gives. For every translation scenario (every
 * test/translate/scenarios*.ts, so new kinds of rules are covered as they are
 * added) and every proxy in it, the mesh is perturbed one step at a time (drop
 * each rule of every kind in turn, move or fail an instance, drop an instance)
 * and back, and after every step each proxy's resources are compared with a
 * cache that has never seen anything else.
 */
const logger = pino({ level: "silent" });



interface Step {
  readonly label: string;
  readonly registry: RegistryState;
  readonly rules: RuleSet;
}

function withService(registry: RegistryState, name: string, change: (service: Service) => Service): RegistryState {
  const services = new Map(registry.services);
  const service = services.get(name);
  if (service) services.set(name, change(service));
  return { services };
}

function perturbations(scenario: Scenario): Step[] {
  const steps: Step[] = [];
  // Every rule of every kind, wherever it sits: arrays in the rule set, or arrays in an object of it.
  const dropEach = (value: unknown, path: string, rebuild: (next: unknown) => RuleSet): void => {
    if (Array.isArray(value)) {
      value.forEach((_, index) => {
        steps.push({ label: `without ${path}[${index}]`, registry: scenario.registry, rules: rebuild(value.filter((__, i) => i !== index)) });
      });
    } else if (value && typeof value === "object" && !(value instanceof Map)) {
      for (const [key, inner] of Object.entries(value)) {
        dropEach(inner, `${path}.${key}`, (next) => rebuild({ ...(value as object), [key]: next }));
      }
    }
  };
  for (const [field, value] of Object.entries(scenario.rules)) {
    if (field === "rejected") continue;
    dropEach(value, field, (next) => ({ ...scenario.rules, [field]: next }) as RuleSet);
  }
  for (const [name, service] of scenario.registry.services) {
    const first = service.instances[0];
    if (!first) continue;
    steps.push({
      label: `${name}: an instance moves`,
      registry: withService(scenario.registry, name, (s) => ({ ...s, instances: [{ ...first, address: "10.99.99.99" }, ...s.instances.slice(1)] })),
      rules: scenario.rules,
    });
    steps.push({
      label: `${name}: an instance fails`,
      registry: withService(scenario.registry, name, (s) => ({ ...s, instances: [{ ...first, health: "unhealthy" }, ...s.instances.slice(1)] })),
      rules: scenario.rules,
    });
    steps.push({
      label: `${name}: an instance leaves`,
      registry: withService(scenario.registry, name, (s) => ({ ...s, instances: s.instances.slice(1) })),
      rules: scenario.rules,
    });
  }
  return steps;
}

/** A cache fed one step after another; after each, every proxy's resources are compared with a fresh translation's. */
function walker(scenario: Scenario): { readonly cache: ResourceCache; check(step: Step): void } {
  const builder = new SnapshotBuilder();
  const cache = new ResourceCache(translate, () => [], logger);
  const proxies = Object.values(scenario.proxies);
  for (const proxy of proxies) cache.retain(proxy);
  return {
    cache,
    check(step: Step): void {
      cache.setSnapshot(builder.build(step.registry, step.rules));
      for (const proxy of proxies) {
        expect({ step: step.label, proxy: proxy.id, resources: fingerprint(cache, proxy) }).toEqual({
          step: step.label,
          proxy: proxy.id,
          resources: reference(step.registry, step.rules, proxy),
        });
      }
    },
  };
}

/**
 * Walks the scenario through every perturbation and back, checking after each
 * step that every proxy holds what a fresh translation gives; returns the
 * cache's counters (which shortcuts were taken).
 */
function walkAndCompare(scenario: Scenario): CacheStats {
  const walk = walker(scenario);
  const base: Step = { label: "base", registry: scenario.registry, rules: scenario.rules };
  walk.check(base);
  for (const step of perturbations(scenario)) {
    walk.check(step);
    walk.check({ ...base, label: `back from ${step.label}` });
  }
  return walk.cache.stats();
}

/**
 * The other direction: a cache that starts from each perturbation, then gets
 * the whole mesh, sees what a fresh translation gives. Memos whose first
 * entries were made for the whole mesh cover only the walk above; here they
 * first see a mesh with a rule missing, then gain it.
 */
function addEachAndCompare(scenario: Scenario): void {
  const base: Step = { label: "base", registry: scenario.registry, rules: scenario.rules };
  for (const step of perturbations(scenario)) {
    const walk = walker(scenario);
    walk.check(step);
    walk.check({ ...base, label: `on from ${step.label}` });
  }
}

describe("incremental translation equals a fresh translation", () => {
  it("finds the translation scenarios", () => {
    expect(scenarios.length).toBeGreaterThan(0);
  });

  describe.each(scenarios)("scenario $name", (scenario) => {
    it("after every perturbation and its undo, for every proxy", () => {
      expect(walkAndCompare(scenario).endpointPatches).toBeGreaterThan(0);
    });

    it("from every perturbation on to the whole mesh, for every proxy", () => {
      addEachAndCompare(scenario);
    });
  });

  it("takes the route-change shortcut where proxies declare dependencies (views that read none of the changed routes are kept)", () => {
    const scoped = scenarios.find((scenario) => scenario.name === "scoped");
    if (!scoped) throw new Error("the scoped translation scenario is gone");
    expect(walkAndCompare(scoped).viewsKeptOnRouteChange).toBeGreaterThan(0);
  });

  it("re-translates only the routes of views whose scope a route change leaves as it is, and all of a view whose scope it changes", () => {
    // In "scoped", billing's route splits to ledger: dropping it takes ledger
    // out of its callers' scope (their clusters change); dropping api's route
    // changes no scope. The walk above checks both against a fresh translation.
    const scoped = scenarios.find((scenario) => scenario.name === "scoped");
    if (!scoped) throw new Error("the scoped translation scenario is gone");
    const stats = walkAndCompare(scoped);
    expect(stats.viewsRoutesOnly).toBeGreaterThan(0);
    expect(stats.viewsTranslated).toBeGreaterThan(Object.keys(scoped.proxies).length);
  });

  it("keeps to the route-only path for a route change that follows endpoint changes of services in scope", () => {
    const scoped = scenarios.find((scenario) => scenario.name === "scoped");
    if (!scoped) throw new Error("the scoped translation scenario is gone");
    const builder = new SnapshotBuilder();
    const cache = new ResourceCache(translate, () => [], logger);
    const proxies = Object.values(scoped.proxies);
    for (const proxy of proxies) cache.retain(proxy);
    cache.setSnapshot(builder.build(scoped.registry, scoped.rules));
    // Every service's instances move (the fast path patches endpoints; the views are not re-translated).
    let registry = scoped.registry;
    for (const name of registry.services.keys()) {
      registry = withService(registry, name, (s) => ({ ...s, instances: s.instances.map((i) => ({ ...i, address: "10.99.0.1" })) }));
    }
    cache.setSnapshot(builder.build(registry, scoped.rules));
    const before = cache.stats();
    // api's route goes: no scope changes.
    const rules = { ...scoped.rules, httpRoutes: scoped.rules.httpRoutes.filter((route) => route.destination !== "api") };
    cache.setSnapshot(builder.build(registry, rules));
    const after = cache.stats();
    expect(after.endpointPatches).toBe(1);
    expect(after.viewsRoutesOnly - before.viewsRoutesOnly).toBeGreaterThan(0);
    expect(after.viewsTranslated).toBe(before.viewsTranslated);
    for (const proxy of proxies) expect(fingerprint(cache, proxy)).toEqual(reference(registry, rules, proxy));
  });
});
