/** replaceRuns and findByKey (src/model/order.ts) against a plain filter-and-sort. */
import { describe, expect, it } from "vitest";
import { compareIds, findByKey, replaceRuns } from "../../src/model/order.ts";
import { seededRandom } from "../support/seeded-random.ts";

interface Row {
  readonly key: string;
  readonly n: number;
}
const keyOf = (row: Row): string => row.key;

/** Rows for some of the keys 1..max (as database ids), 0–3 per key, sorted by key. */
function rowsFor(next: () => number, keys: readonly string[], tag: number): Row[] {
  const rows: Row[] = [];
  for (const key of keys) for (let i = Math.floor(next() * 4); i > 0; i--) rows.push({ key, n: tag * 1000 + rows.length });
  return rows;
}

describe("replaceRuns", () => {
  it("gives what removing the keys' rows, adding the fresh ones and a stable sort by key give", () => {
    for (let seed = 1; seed <= 300; seed++) {
      const next = seededRandom(seed);
      const all = Array.from({ length: 1 + Math.floor(next() * 40) }, (_, i) => String(i * 7 + 1));
      const sorted = rowsFor(next, all, 1);
      const keys = all.filter(() => next() < 0.3).sort(compareIds);
      const fresh = rowsFor(next, keys, 2);
      const expected = [...sorted.filter((row) => !keys.includes(row.key)), ...fresh].sort((a, b) => compareIds(a.key, b.key));
      expect(replaceRuns(sorted, keyOf, keys, fresh), `seed ${seed}`).toEqual(expected);
    }
  });

  it("leaves its input alone and refuses fresh rows of a key it was not given", () => {
    const sorted: Row[] = [
      { key: "2", n: 1 },
      { key: "10", n: 2 },
    ];
    const copy = [...sorted];
    expect(replaceRuns(sorted, keyOf, ["10"], [{ key: "10", n: 3 }])).toEqual([{ key: "2", n: 1 }, { key: "10", n: 3 }]);
    expect(sorted).toEqual(copy);
    expect(() => replaceRuns(sorted, keyOf, ["10"], [{ key: "9", n: 4 }])).toThrow(/not in keys/);
  });
});

describe("findByKey", () => {
  it("finds a key by id order (shorter ids first), or nothing", () => {
    const sorted: Row[] = ["1", "5", "9", "10", "99", "100"].map((key, n) => ({ key, n }));
    for (const row of sorted) expect(findByKey(sorted, keyOf, row.key)).toBe(row);
    for (const key of ["0", "6", "11", "101", "1000"]) expect(findByKey(sorted, keyOf, key)).toBeUndefined();
  });
});
