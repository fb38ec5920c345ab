import { describe, expect, it } from "vitest";
import { PatchedMap } from "../../src/xds/cache.ts";

/** PatchedMap (the endpoint fast path's copy-free map patch) behaves like copying the map and applying the patch. */
describe("PatchedMap", () => {
  it("matches a copied Map under random patches, through folding", () => {
    let state = 12345;
    const random = (n: number): number => {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      return state % n;
    };
    let folds = 0;
    for (const size of [0, 5, 40, 3000]) {
      let reference = new Map<string, number>(Array.from({ length: size }, (_, i) => [`r${i}`, i]));
      let patched: ReadonlyMap<string, number> = new Map(reference);
      for (let step = 0; step < 400; step++) {
        const changes = new Map<string, number | null>();
        for (let k = random(4); k >= 0; k--) {
          const name = `r${random(size + 400)}`;
          changes.set(name, random(3) === 0 ? null : step * 10 + k);
        }
        reference = new Map(reference);
        for (const [name, value] of changes) {
          if (value === null) reference.delete(name);
          else reference.set(name, value);
        }
        const before = patched;
        patched = PatchedMap.of(patched, changes);
        if (before instanceof PatchedMap && !(patched instanceof PatchedMap)) folds++;
        expect(patched.size).toBe(reference.size);
        expect(Object.fromEntries(patched)).toEqual(Object.fromEntries(reference));
        expect([...patched.keys()].sort()).toEqual([...reference.keys()].sort());
        expect([...patched.values()].sort()).toEqual([...reference.values()].sort());
        for (let probe = 0; probe < 5; probe++) {
          const name = `r${random(size + 20)}`;
          expect(patched.get(name)).toBe(reference.get(name));
          expect(patched.has(name)).toBe(reference.has(name));
        }
      }
    }
    expect(folds).toBeGreaterThan(3);
  });
});
