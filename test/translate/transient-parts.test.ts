import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { buildSnapshot } from "../../src/translate/build-snapshot.ts";
import { TransientMap } from "../../src/translate/resource-types.ts";
import { serviceClusters, serviceEndpoints, translate } from "../../src/translate/translate.ts";
import { ResourceCache } from "../../src/xds/cache.ts";
import { outboundCluster } from "../../src/translate/naming.ts";
import type { ProxyView } from "../../src/xds/cache.ts";
import { httpService, registryOf, sidecar } from "./builders.ts";

/**
 * A service's clusters and endpoint assignments are parts the cache encodes
 * once and never reads again as messages: they are reused across views and
 * snapshots as the same part object, while their messages are built per read
 * and never held (so they die young instead of living in the old generation).
 */
describe("transient cluster and endpoint parts", () => {
  const registry = registryOf(httpService("tp-api", ["10.1.0.1", "10.1.0.2"]), httpService("tp-web", ["10.1.0.3"]));
  const rules = { subsets: [{ service: "tp-api", name: "v1", selector: {} }], httpRoutes: [], rejected: [] };

  it("is the same part for every reader and every snapshot with the same inputs", () => {
    const first = buildSnapshot(registry, rules);
    const second = buildSnapshot(registry, rules);
    const api = registry.services.get("tp-api")!;
    expect(serviceEndpoints(first, api)).toBe(serviceEndpoints(second, api));
    expect(serviceClusters(first, api)).toBe(serviceClusters(second, api));
  });

  it("builds its messages on each read, equal every time, and holds none", () => {
    const snapshot = buildSnapshot(registry, rules);
    const api = registry.services.get("tp-api")!;
    for (const part of [serviceEndpoints(snapshot, api), serviceClusters(snapshot, api)]) {
      expect(part).toBeInstanceOf(TransientMap);
      expect([...part.keys()]).toEqual([outboundCluster("tp-api"), outboundCluster("tp-api", "v1")]);
      const name = outboundCluster("tp-api", "v1");
      expect(part.get(name)).toEqual(part.get(name));
      expect(part.get(name)).not.toBe(part.get(name));
    }
  });

  it("is encoded once by the cache, and its encoding is shared by every view that holds it", () => {
    const cache = new ResourceCache(translate, () => [], pino({ level: "silent" }));
    const proxies = [sidecar("tp-web-1", "tp-web", 8080), sidecar("tp-web2-1", "tp-web2", 8080)];
    for (const proxy of proxies) cache.retain(proxy);
    cache.setSnapshot(buildSnapshot(registry, rules));
    const [first, second] = proxies.map((proxy) => cache.viewFor(proxy) as ProxyView);
    const name = outboundCluster("tp-api", "v1");
    for (const kind of ["cluster", "endpoint"] as const) {
      const partOf = (view: ProxyView) => [...view.resources[kind].parts].find((part) => [...part.names()].includes(name));
      expect(partOf(first!)).toBeDefined();
      expect(partOf(second!)).toBe(partOf(first!));
    }
  });
});
