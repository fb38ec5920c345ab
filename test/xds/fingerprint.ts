import { pino } from "pino";
import type { Proxy } from "../../src/model/proxy.ts";
import type { RegistryState } from "../../src/model/registry.ts";
import type { RuleSet } from "../../src/model/rules.ts";
import { buildSnapshot } from "../../src/translate/build-snapshot.ts";
import { RESOURCE_KINDS } from "../../src/translate/resource-types.ts";
import { translate } from "../../src/translate/translate.ts";
import { ResourceCache } from "../../src/xds/cache.ts";

/** What a proxy holds, comparable with toEqual: resource name -> version, per kind. */
export type Fingerprint = Record<string, Record<string, string>>;

export function fingerprint(cache: ResourceCache, proxy: Proxy): Fingerprint {
  const view = cache.viewFor(proxy);
  if (!view) throw new Error("no view");
  const out: Fingerprint = {};
  for (const kind of RESOURCE_KINDS) out[kind] = Object.fromEntries([...view.resources[kind]].map(([name, r]) => [name, r.version]));
  return out;
}

/** A translation from scratch: fresh objects everywhere, so no memo built for the originals applies. */
export function reference(registry: RegistryState, rules: RuleSet, proxy: Proxy): Fingerprint {
  const cache = new ResourceCache(translate, () => [], pino({ level: "silent" }));
  cache.setSnapshot(buildSnapshot(structuredClone(registry), structuredClone(rules)));
  return fingerprint(cache, proxy);
}
