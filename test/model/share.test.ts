import { describe, expect, it } from "vitest";
import { shareStructure } from "../../src/model/share.ts";

/** Structural sharing: what is equal keeps the previous identity; what a source already shared is not copied. */
describe("shareStructure", () => {
  const service = (name: string, address: string) => ({ name, instances: [{ id: `${name}-1`, address }] });

  it("returns the previous value when everything is equal, even from fresh objects", () => {
    const previous = { services: new Map([["a", service("a", "10.0.0.1")]]) };
    const next = { services: new Map([["a", service("a", "10.0.0.1")]]) };
    expect(shareStructure(previous, next)).toBe(previous);
  });

  it("keeps the next map itself when it already shares every unchanged value", () => {
    const a = service("a", "10.0.0.1");
    const b = service("b", "10.0.0.2");
    const previous = new Map([["a", a], ["b", b]]);
    const next = new Map([["a", a], ["b", service("b", "10.0.0.9")]]);
    const shared = shareStructure(previous, next);
    expect(shared).toBe(next);
    expect(shared.get("a")).toBe(a);
  });

  it("builds a map of previous objects for equal entries and new ones for changed entries", () => {
    const a = service("a", "10.0.0.1");
    const b = service("b", "10.0.0.2");
    const c = service("c", "10.0.0.3");
    const previous = new Map([["a", a], ["b", b], ["c", c]]);
    // Fresh copies: a equal, b changed, c equal (the first value to differ from next's own is a, at index 0).
    const next = new Map([["a", service("a", "10.0.0.1")], ["b", service("b", "10.0.0.9")], ["c", service("c", "10.0.0.3")]]);
    const shared = shareStructure(previous, next);
    expect(shared).not.toBe(previous);
    expect(shared).not.toBe(next);
    expect([...shared.keys()]).toEqual(["a", "b", "c"]);
    expect(shared.get("a")).toBe(a);
    expect(shared.get("c")).toBe(c);
    expect(shared.get("b")).toEqual(service("b", "10.0.0.9"));
    expect(shared.get("b")!.instances[0]).not.toBe(b.instances[0]);
  });

  it("keeps next's own values before the first one it shares from previous, in order", () => {
    const a = service("a", "10.0.0.1");
    const b = service("b", "10.0.0.2");
    const previous = new Map([["a", a], ["b", b]]);
    const newA = service("a", "10.0.0.7");
    const next = new Map([["a", newA], ["b", service("b", "10.0.0.2")], ["d", service("d", "10.0.0.4")]]);
    const shared = shareStructure(previous, next);
    expect([...shared.keys()]).toEqual(["a", "b", "d"]);
    expect(shared.get("a")).toBe(newA);
    expect(shared.get("b")).toBe(b);
  });

  it("notices removed keys", () => {
    const a = service("a", "10.0.0.1");
    const previous = new Map([["a", a], ["b", service("b", "10.0.0.2")]]);
    const next = new Map([["a", a]]);
    expect(shareStructure(previous, next)).toBe(next);
  });

  it("shares arrays and plain objects the same way", () => {
    const previous = { list: [{ x: 1 }, { x: 2 }], other: { y: "z" } };
    const next = { list: [{ x: 1 }, { x: 3 }], other: { y: "z" } };
    const shared = shareStructure(previous, next);
    expect(shared.list[0]).toBe(previous.list[0]);
    expect(shared.other).toBe(previous.other);
    expect(shared.list[1]).toEqual({ x: 3 });
  });
});
