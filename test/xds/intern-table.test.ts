import { describe, expect, it } from "vitest";
import { EncodedPart } from "../../src/xds/encoded-parts.ts";
import type { EncodedResource } from "../../src/xds/encoding.ts";
import { InternTable } from "../../src/xds/intern-table.ts";
import type { ResourceKind } from "../../src/translate/resource-types.ts";

function resource(kind: ResourceKind, name: string, version: string): EncodedResource {
  return { kind, name, version, any: new Uint8Array(), size: 0 };
}

function partOf(...resources: EncodedResource[]): EncodedPart {
  return new EncodedPart(new Map(resources.map((r) => [r.name, r])), new Set());
}

describe("InternTable", () => {
  it("keeps one entry per kind, name and version, and finds each by all three", () => {
    const table = new InternTable();
    // One route configuration name with different content per view, and a
    // cluster and an endpoint assignment whose bytes (so versions) coincide.
    const views = [resource("route", "15001", "v-a"), resource("route", "15001", "v-b")];
    const cluster = resource("cluster", "api", "v-same");
    const endpoint = resource("endpoint", "api", "v-same");
    table.holdPart(partOf(views[0]!));
    table.holdPart(partOf(views[1]!));
    table.holdPart(partOf(cluster));
    table.holdPart(partOf(endpoint));
    for (const r of [...views, cluster, endpoint]) table.add(r);
    expect(table.size).toBe(4);
    expect(table.get("route", "15001", "v-a")).toBe(views[0]);
    expect(table.get("route", "15001", "v-b")).toBe(views[1]);
    expect(table.get("cluster", "api", "v-same")).toBe(cluster);
    expect(table.get("endpoint", "api", "v-same")).toBe(endpoint);
    expect(table.get("route", "15001", "v-c")).toBeUndefined();
    expect(table.get("listener", "api", "v-same")).toBeUndefined();
  });

  it("drops a resource when the last part holding it is released, and one never held at the sweep", () => {
    const table = new InternTable();
    const held = resource("cluster", "api", "v1");
    const stray = resource("cluster", "web", "v1");
    const part = partOf(held);
    table.holdPart(part);
    table.holdPart(part);
    table.add(held);
    table.add(stray);
    table.sweep();
    expect(table.get("cluster", "web", "v1")).toBeUndefined();
    expect(table.get("cluster", "api", "v1")).toBe(held);
    table.releasePart(part);
    expect(table.get("cluster", "api", "v1")).toBe(held);
    table.releasePart(part);
    expect(table.get("cluster", "api", "v1")).toBeUndefined();
    expect(table.size).toBe(0);
  });

  it("a newer object of the same version replaces the entry, and releasing the older one leaves it", () => {
    const table = new InternTable();
    const older = resource("cluster", "api", "v1");
    const newer = resource("cluster", "api", "v1");
    const oldPart = partOf(older);
    table.holdPart(oldPart);
    table.add(older);
    table.add(newer);
    table.holdPart(partOf(newer));
    table.releasePart(oldPart);
    expect(table.get("cluster", "api", "v1")).toBe(newer);
    expect(table.size).toBe(1);
  });
});
