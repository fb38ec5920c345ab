import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { RESOURCE_KINDS } from "../../src/translate/resource-types.ts";
import { buildSnapshot } from "../../src/translate/build-snapshot.ts";
import { translate } from "../../src/translate/translate.ts";
import { ResourceCache } from "../../src/xds/cache.ts";
import { scenarios } from "../translate/scenarios.ts";
import { changedResources, diffMaps, EncodedPart, mapVersion, PartsMap, type MapDiff } from "../../src/xds/encoded-parts.ts";
import { setVersion } from "../../src/xds/encoding.ts";
import type { EncodedResource } from "../../src/xds/encoding.ts";
import { seededRandom } from "../support/seeded-random.ts";

function resource(name: string, version = "v1"): EncodedResource {
  return { kind: "endpoint", name, version, any: new Uint8Array(), size: 0 };
}

function part(names: readonly string[], withheld: readonly string[] = []): EncodedPart {
  return new EncodedPart(new Map(names.map((name) => [name, resource(name)])), new Set(withheld));
}

/** PartsMap (a view's resources held as shared parts) reads like the Map merged from its parts. */
describe("PartsMap", () => {
  for (const partCount of [0, 1, 5, 16, 17, 300]) {
    it(`matches the merged map with ${partCount} parts (scanned or indexed)`, () => {
      const parts = Array.from({ length: partCount }, (_, p) => part([`s${p}`, `s${p}|v1`, `s${p}|v2`].slice(0, 1 + (p % 3)), p % 7 === 3 ? [`s${p}|bad`] : []));
      const map = new PartsMap(parts);
      const merged = new Map(parts.flatMap((each) => [...each.resources]));
      expect(map.size).toBe(merged.size);
      expect([...map.keys()]).toEqual([...merged.keys()]);
      expect([...map.values()]).toEqual([...merged.values()]);
      expect([...map]).toEqual([...merged]);
      for (const name of [...merged.keys(), "missing", "s3|bad"]) {
        expect(map.get(name)).toBe(merged.get(name));
        expect(map.has(name)).toBe(merged.has(name));
      }
      expect([...map.withheld].sort()).toEqual(parts.flatMap((each) => [...each.withheld]).sort());
    });
  }

  it("replaces parts by identity", () => {
    const a = part(["a"]);
    const b = part(["b"]);
    const b2 = part(["b"], ["b|bad"]);
    const map = new PartsMap([a, b]);
    const replaced = map.replacing(new Map([[b, b2]]));
    expect(replaced.parts).toEqual([a, b2]);
    expect(replaced.withheld).toEqual(new Set(["b|bad"]));
    expect(replaced.sameParts(new PartsMap([a, b2]))).toBe(true);
    expect(replaced.sameParts(map)).toBe(false);
  });

  for (const partCount of [40, 300]) {
    it(`reads like the merged map through many part replacements (${partCount} parts: ${partCount > 64 ? "recorded beside the list, folded" : "copied"})`, () => {
      let state = 99;
      const random = (n: number): number => {
        state = (Math.imul(state, 1103515245) + 12345) >>> 0;
        return state % n;
      };
      let current = Array.from({ length: partCount }, (_, p) => part([`s${p}`, `s${p}|v1`].slice(0, 1 + (p % 2))));
      let map = new PartsMap(current);
      for (let step = 0; step < 300; step++) {
        // Successors hold the same names; some names get withheld, some come back.
        const swaps = new Map<EncodedPart, EncodedPart>();
        for (let k = random(3); k >= 0; k--) {
          const held = current[random(partCount)]!;
          const names = [...held.names()];
          const withheld = names.filter(() => random(4) === 0);
          swaps.set(held, new EncodedPart(new Map(names.filter((n) => !withheld.includes(n)).map((n) => [n, resource(n, `v${step}`)])), new Set(withheld)));
        }
        current = current.map((each) => swaps.get(each) ?? each);
        map = map.replacing(swaps);
        const merged = new Map(current.flatMap((each) => [...each.resources]));
        expect(map.parts).toEqual(current);
        expect(map.size).toBe(merged.size);
        expect([...map]).toEqual([...merged]);
        for (let probe = 0; probe < 6; probe++) {
          const name = `s${random(partCount + 5)}${random(2) === 0 ? "" : "|v1"}`;
          expect(map.get(name)).toBe(merged.get(name));
        }
        expect([...map.withheld].sort()).toEqual(current.flatMap((each) => [...each.withheld]).sort());
      }
    });
  }

  it("compares part content by resource identity and withheld names", () => {
    const shared = resource("a");
    const one = new EncodedPart(new Map([["a", shared]]), new Set(["w"]));
    expect(one.sameContent(new EncodedPart(new Map([["a", shared]]), new Set(["w"])))).toBe(true);
    expect(one.sameContent(new EncodedPart(new Map([["a", resource("a")]]), new Set(["w"])))).toBe(false);
    expect(one.sameContent(new EncodedPart(new Map([["a", shared]]), new Set()))).toBe(false);
    expect([...one.names()]).toEqual(["a", "w"]);
    expect(one.nameCount).toBe(2);
  });
});

/**
 * changedResources compares two views' maps part by part, skipping shared
 * parts; each case is checked against the same maps copied into plain Maps,
 * which it compares name by name.
 */
describe("changedResources", () => {
  const versioned = (names: readonly string[], version: string) => new EncodedPart(new Map(names.map((name) => [name, resource(name, version)])), new Set());
  const plain = (map: PartsMap) => new Map(map);
  const names = (changed: EncodedResource[] | null) => changed?.map((each) => `${each.name}@${each.version}`) ?? null;
  const agree = (from: PartsMap, to: PartsMap) => {
    const byPart = names(changedResources(from, to));
    expect(byPart).toEqual(names(changedResources(plain(from), plain(to))));
    return byPart;
  };

  for (const partCount of [3, 70]) {
    const parts = Array.from({ length: partCount }, (_, p) => versioned([`s${p}`, `s${p}|v1`], "v1"));
    const from = new PartsMap(parts);

    it(`finds what a replaced part changed, in order (${partCount} parts)`, () => {
      const to = from.replacing(new Map([[parts[2]!, versioned(["s2", "s2|v1"], "v2")], [parts[1]!, versioned(["s1", "s1|v1"], "v1")]]));
      expect(agree(from, to)).toEqual(["s2@v2", "s2|v1@v2"]);
    });

    it(`finds nothing when a successor holds the same versions (${partCount} parts)`, () => {
      expect(agree(from, from.replacing(new Map([[parts[0]!, versioned(["s0", "s0|v1"], "v1")]])))).toEqual([]);
    });

    it(`falls back to names when parts do not line up (${partCount} parts)`, () => {
      const reordered = new PartsMap([...parts].reverse());
      expect(agree(from, reordered)).toEqual([]);
      const merged = new PartsMap([versioned(["s0", "s0|v1", "s1", "s1|v1"], "v3"), ...parts.slice(2)]);
      expect(agree(from, merged)).toEqual(["s0@v3", "s0|v1@v3", "s1@v3", "s1|v1@v3"]);
    });

    it(`is null when the names differ (${partCount} parts)`, () => {
      expect(agree(from, from.replacing(new Map([[parts[1]!, versioned(["s1", "other"], "v1")]])))).toBeNull();
      expect(agree(from, new PartsMap(parts.slice(1)))).toBeNull();
    });
  }
});

/**
 * A large view's maps share a base list and record replacements (folded at
 * the square root of the list): its version and its changes are derived from
 * the replacements. Along a random walk of endpoint-style replacements, both
 * must equal what the plain values give.
 */
describe("a large view's version and changes", () => {
  it("match setVersion and a name-by-name comparison through 200 replacements of a 300-part map", () => {
    const next = seededRandom(7);
    const random = (n: number) => Math.floor(next() * n);
    const parts = Array.from({ length: 300 }, (_, p) => new EncodedPart(new Map([`s${p}`, `s${p}|v1`].map((name) => [name, resource(name, "v0")])), new Set()));
    const maps = [new PartsMap(parts)];
    for (let step = 1; step <= 200; step++) {
      const current = maps[maps.length - 1]!;
      const swaps = new Map<EncodedPart, EncodedPart>();
      for (let k = 0; k < 1 + random(3); k++) {
        const held = current.parts[random(300)]!;
        // Sometimes the same versions again (a successor with nothing new), sometimes one name only changes.
        const version = random(4) === 0 ? "v0" : `v${step}`;
        swaps.set(held, new EncodedPart(new Map([...held.resources].map(([name, was]) => [name, random(2) === 0 ? was : resource(name, version)])), new Set()));
      }
      maps.push(current.replacing(swaps));
    }
    for (const [i, map] of maps.entries()) {
      expect(mapVersion(map)).toBe(setVersion(map.values()));
      for (const back of [1, 2, 17]) {
        const from = maps[i - back];
        if (!from) continue;
        const byName = changedResources(new Map(from), new Map(map))!.map((each) => `${each.name}@${each.version}`);
        expect(changedResources(from, map)!.map((each) => `${each.name}@${each.version}`)).toEqual(byName);
      }
    }
  });
});

describe("diffMaps", () => {
  /** What changed and what went, name by name over plain maps. */
  const plainDiff = (from: ReadonlyMap<string, EncodedResource>, to: ReadonlyMap<string, EncodedResource>) => ({
    changed: [...to].filter(([name, resource]) => from.get(name)?.version !== resource.version).map(([name, resource]) => `${name}@${resource.version}`),
    removed: [...from.keys()].filter((name) => !to.has(name)),
  });
  const shown = (diff: MapDiff) => ({ changed: diff.changed.map((each) => `${each.name}@${each.version}`), removed: [...diff.removed] });

  it("find what was added, changed and removed between maps over parts that come and go, remembered only for the same parts", () => {
    const next = seededRandom(11);
    const random = (n: number) => Math.floor(next() * n);
    const partOf = (service: number, version: string) => new EncodedPart(new Map([`s${service}`, `s${service}|v1`].map((name) => [name, resource(name, version)])), new Set());
    let parts = Array.from({ length: 40 }, (_, service) => partOf(service, "v0"));
    const maps = [new PartsMap(parts)];
    for (let step = 1; step <= 150; step++) {
      const next = [...parts];
      const op = random(4);
      if (op === 0) next.splice(random(next.length + 1), 0, partOf(1000 + step, `v${step}`)); // a service joins
      else if (op === 1 && next.length > 1) next.splice(random(next.length), 1); // one leaves
      else {
        // One changes (a new version of the same service), or another service takes its place.
        const at = random(next.length);
        const service = random(2) === 0 ? Number((next[at]!.names().next().value as string).slice(1)) : 2000 + step;
        next[at] = partOf(service, `v${step}`);
      }
      parts = next;
      maps.push(new PartsMap(parts));
    }
    for (const [i, map] of maps.entries()) {
      for (const back of [1, 3]) {
        const from = maps[i - back];
        if (!from) continue;
        const expected = plainDiff(new Map(from), new Map(map));
        expect(shown(diffMaps(from, map))).toEqual(expected);
        // A map over the same parts finds the remembered difference; the next pair its own.
        expect(shown(diffMaps(new PartsMap(from.parts), new PartsMap(map.parts)))).toEqual(expected);
        expect(shown(diffMaps(map, from))).toEqual(plainDiff(new Map(map), new Map(from)));
      }
    }
  });
});

/** PartsMap relies on translation composing parts with disjoint names; every scenario's views are checked. */
describe("translated views", () => {
  for (const scenario of scenarios) {
    it(`hold parts with disjoint names (${scenario.name})`, () => {
      const cache = new ResourceCache(translate, () => [], pino({ level: "silent" }));
      cache.setSnapshot(buildSnapshot(scenario.registry, scenario.rules));
      for (const proxy of Object.values(scenario.proxies)) {
        const view = cache.viewFor(proxy)!;
        for (const kind of RESOURCE_KINDS) {
          const names = view.resources[kind].parts.flatMap((each) => [...each.names()]);
          expect({ proxy: proxy.id, kind, names: names.length }).toEqual({ proxy: proxy.id, kind, names: new Set(names).size });
        }
      }
    });
  }
});
