import { describe, expect, it } from "vitest";
import { encodeResource, setVersion } from "../../src/xds/encoding.ts";
import { create } from "@bufbuild/protobuf";
import { ClusterSchema } from "../../src/gen/envoy/config/cluster/v3/cluster_pb.ts";

/** The version of a set of resources (SotW version_info, a delta subscription's system version). */
const cluster = (name: string, timeoutSeconds: number) =>
  encodeResource("cluster", name, create(ClusterSchema, { name, connectTimeout: { seconds: BigInt(timeoutSeconds) } }));

describe("setVersion", () => {
  const a = cluster("a", 1);
  const b = cluster("b", 1);
  const c = cluster("c", 1);

  it("is 22 URL-safe characters, like a resource's version", () => {
    expect(setVersion([a, b])).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(setVersion([])).toMatch(/^[A-Za-z0-9_-]{22}$/);
  });

  it("does not depend on the order of the resources", () => {
    expect(setVersion([a, b, c])).toBe(setVersion([c, a, b]));
    expect(setVersion([a, b, c])).toBe(setVersion([b, c, a]));
  });

  it("changes when a resource's content changes, one is added or one is removed", () => {
    const base = setVersion([a, b, c]);
    expect(setVersion([a, cluster("b", 2), c])).not.toBe(base);
    expect(setVersion([a, b])).not.toBe(base);
    expect(setVersion([a, b, c, cluster("d", 1)])).not.toBe(base);
    expect(setVersion([])).not.toBe(setVersion([a]));
  });

  it("tells apart the sets of 2,000 random single changes", () => {
    const resources = Array.from({ length: 50 }, (_, i) => cluster(`svc-${i}`, 1));
    const seen = new Set([setVersion(resources)]);
    for (let i = 0; i < 2000; i++) {
      const changed = [...resources];
      changed[i % 50] = cluster(`svc-${i % 50}`, 2 + i);
      seen.add(setVersion(changed));
    }
    expect(seen.size).toBe(2001);
  });
});
