import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { Proxy } from "../../src/model/proxy.ts";
import type { RegistryState } from "../../src/model/registry.ts";
import { emptyRules } from "../../src/model/rules.ts";
import { SnapshotBuilder } from "../../src/translate/incremental-snapshot.ts";
import { translate } from "../../src/translate/translate.ts";
import { ResourceCache } from "../../src/xds/cache.ts";
import { httpService, registryOf } from "../translate/builders.ts";
import { fingerprint, reference } from "./fingerprint.ts";

/**
 * A proxy that declares no dependencies holds every service of the mesh: its
 * view has a part per service, and above a few dozen parts the endpoint fast
 * path records replaced parts beside the list instead of copying it
 * (encoded-parts.ts), folding them in now and then. Through a long run of
 * endpoint changes (some services changed again and again, some several at
 * once), its view must equal a fresh translation at every step.
 */
const SERVICES = 150;

const everything: Proxy = { id: "edge-1", service: "edge", kind: "envoy", inboundPort: null, appPort: null, outboundPort: 15001, userAgent: "envoy" };

function moved(registry: RegistryState, names: readonly string[], step: number): RegistryState {
  const services = new Map(registry.services);
  for (const name of names) {
    const service = services.get(name)!;
    const [first, ...rest] = service.instances;
    services.set(name, { ...service, instances: [{ ...first!, address: `10.9.${step >> 8}.${step & 255}` }, ...rest] });
  }
  return { services };
}

describe("a view holding every service", () => {
  it("equals a fresh translation through 120 endpoint changes (replacements recorded and folded)", () => {
    let registry = registryOf(httpService("edge", ["10.0.0.1"]), ...Array.from({ length: SERVICES }, (_, i) => httpService(`svc-${i}`, [`10.1.${i}.1`, `10.1.${i}.2`])));
    const builder = new SnapshotBuilder();
    const cache = new ResourceCache(translate, () => [], pino({ level: "silent" }));
    cache.retain(everything);
    cache.setSnapshot(builder.build(registry, emptyRules));
    expect(cache.viewFor(everything)!.resources.endpoint.parts.length).toBe(SERVICES + 1);
    for (let step = 1; step <= 120; step++) {
      // A few hot services change often (a replaced part replaced again), others once, sometimes three at a time.
      const names = step % 7 === 0 ? [`svc-${step % 150}`, `svc-${(step * 13) % 150}`, `svc-${(step * 29) % 150}`] : [`svc-${step % 5 === 0 ? 3 : (step * 11) % 150}`];
      registry = moved(registry, [...new Set(names)], step);
      cache.setSnapshot(builder.build(registry, emptyRules));
      if (step % 10 !== 0 && step <= 110) continue;
      const expected = reference(registry, emptyRules, everything);
      expect({ step, resources: fingerprint(cache, everything) }).toEqual({ step, resources: expected });
      // Lookups by name (through the name index of the part list) agree too.
      const endpoints = cache.viewFor(everything)!.resources.endpoint;
      const looked = Object.fromEntries(Object.keys(expected.endpoint!).map((name) => [name, endpoints.get(name)?.version]));
      expect({ step, looked }).toEqual({ step, looked: expected.endpoint });
    }
    expect(cache.stats().endpointPatches).toBe(120);
  });
});
