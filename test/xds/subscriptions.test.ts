import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { namesKey } from "../../src/xds/cache.ts";
import { NameSetTable, SubscriptionTable } from "../../src/xds/subscriptions.ts";

const bytesOf = (text: string): Uint8Array => new TextEncoder().encode(text);

describe("SubscriptionTable", () => {
  it("gives every stream that lists the same names in the same order one shared subscription", () => {
    const table = new SubscriptionTable();
    const first = table.intern(["orders", "payments"], bytesOf("wire"));
    const second = table.intern(["orders", "payments"], bytesOf("wire"));
    expect(second).toBe(first);
    expect(first.names).toEqual(["orders", "payments"]);
    expect(table.size).toBe(1);
  });

  it("keeps its own frozen copy of the names and bytes, not the request's", () => {
    const table = new SubscriptionTable();
    const names = ["orders"];
    const wire = bytesOf("wire");
    const subscription = table.intern(names, wire);
    names.push("payments");
    wire[0] = 0;
    expect(subscription.names).toEqual(["orders"]);
    expect(Object.isFrozen(subscription.names)).toBe(true);
    expect(subscription.bytes).toEqual(bytesOf("wire"));
  });

  it("keys the same set in another order alike, but keeps the order's own list", () => {
    const table = new SubscriptionTable();
    const ab = table.intern(["a", "b"], undefined);
    const ba = table.intern(["b", "a"], undefined);
    expect(ba).not.toBe(ab);
    expect(ba.key).toBe(ab.key);
    expect(ba.names).toEqual(["b", "a"]);
  });

  it("leaves the wildcard out of the key", () => {
    const table = new SubscriptionTable();
    expect(table.intern(["*", "orders"], undefined).key).toBe(table.intern(["orders"], undefined).key);
    expect(table.intern(["*"], undefined).key).toBe(namesKey([]));
  });

  it("learns the wire bytes from the first request that has them", () => {
    const table = new SubscriptionTable();
    const decoded = table.intern(["orders"], undefined);
    expect(decoded.bytes).toBeNull();
    expect(table.intern(["orders"], bytesOf("wire")).bytes).toEqual(bytesOf("wire"));
    expect(decoded.bytes).toEqual(bytesOf("wire"));
  });

  it("finds the last list interned for a kind by its wire bytes alone, and only by equal bytes", () => {
    const table = new SubscriptionTable();
    const endpoints = table.intern(["orders", "payments"], bytesOf("wire-1"), "endpoint");
    expect(table.fromWire("endpoint", bytesOf("wire-1"))).toBe(endpoints);
    // As many bytes, one differing; another kind; a list interned without bytes.
    expect(table.fromWire("endpoint", bytesOf("wire-2"))).toBeUndefined();
    expect(table.fromWire("cluster", bytesOf("wire-1"))).toBeUndefined();
    table.intern(["refunds"], undefined, "endpoint");
    expect(table.fromWire("endpoint", bytesOf("wire-1"))).toBe(endpoints);
    // A newer list for the kind replaces it.
    table.intern(["refunds"], bytesOf("wire-3"), "endpoint");
    expect(table.fromWire("endpoint", bytesOf("wire-1"))).toBeUndefined();
  });

  it("does not confuse lists whose joined text would be equal", () => {
    const table = new SubscriptionTable();
    expect(table.intern(["a\u0000b"], undefined)).not.toBe(table.intern(["a", "b"], undefined));
    expect(table.intern(["a,b"], undefined)).not.toBe(table.intern(["a", "b"], undefined));
    expect(namesKey(["a\u0000b"])).not.toBe(namesKey(["a", "b"]));
  });
});

describe("NameSetTable", () => {
  it("gives every delta stream subscribed to the same set one shared set, whatever the order or repeats", () => {
    const table = new NameSetTable();
    const first = table.intern(["payments", "orders"]);
    const second = table.intern(new Set(["orders", "payments", "orders"]));
    expect(second).toBe(first);
    expect(first.list).toEqual(["orders", "payments"]);
    expect([...first.names].sort()).toEqual(["orders", "payments"]);
    expect(first.key).toBe(namesKey(["orders", "payments"]));
    expect(table.size).toBe(1);
  });

  it("reads a subscribe list's bytes once while they repeat: the set without \"*\", and whether \"*\" was listed", () => {
    const table = new NameSetTable();
    let decoded = 0;
    const read = (kind: "cluster" | "endpoint", wire: string, names: string[]) => table.fromWire(kind, bytesOf(wire), () => (decoded++, names));
    const first = read("cluster", "wire-1", ["*", "orders"]);
    expect(first.wildcard).toBe(true);
    expect(first.set.list).toEqual(["orders"]);
    expect(read("cluster", "wire-1", ["*", "orders"])).toBe(first);
    expect(decoded).toBe(1);
    const other = read("cluster", "wire-2", ["orders"]);
    expect(other.wildcard).toBe(false);
    expect(other.set).toBe(first.set);
    expect(read("endpoint", "wire-2", ["orders"])).not.toBe(other);
    expect(decoded).toBe(3);
  });

  it("keeps different sets apart, and its own copy of the names", () => {
    const table = new NameSetTable();
    const names = new Set(["orders"]);
    const orders = table.intern(names);
    names.add("payments");
    expect(orders.names.has("payments")).toBe(false);
    expect(table.intern(names)).not.toBe(orders);
    expect(table.intern(["a\u0000b"])).not.toBe(table.intern(["a", "b"]));
    expect(Object.isFrozen(orders.list)).toBe(true);
  });
});

describe("weak interning", () => {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;

  /** Collects until the table has reclaimed its dead entries (finalizers run after a collection, on a later turn). */
  async function collectUntil(done: () => boolean): Promise<void> {
    for (let round = 0; round < 20 && !done(); round++) {
      gc();
      await sleep(10);
    }
  }

  it("forgets subscriptions no stream holds any more, and keeps the ones still held", async () => {
    const sotw = new SubscriptionTable();
    const delta = new NameSetTable();
    const held = [sotw.intern(["kept"], undefined), delta.intern(["kept"])];
    // Interned and dropped at once, as by streams that closed.
    for (let i = 0; i < 1000; i++) {
      sotw.intern([`gone-${i}`], undefined);
      delta.intern([`gone-${i}`]);
    }
    expect(sotw.kept).toBe(1001);
    await collectUntil(() => sotw.kept === 1 && delta.kept === 1);
    expect([sotw.kept, delta.kept]).toEqual([1, 1]);
    expect([sotw.size, delta.size]).toEqual([1, 1]);
    // What is still held is still the shared value.
    expect(sotw.intern(["kept"], undefined)).toBe(held[0]);
    expect(delta.intern(["kept"])).toBe(held[1]);
  });
});
