/**
 * The incremental half of a registry reload: puts freshly parsed services into
 * the previously delivered state. Pure.
 *
 * The result equals what parsing every row would give (same services, same
 * order: by name, as parseRegistry sorts them), while every service outside
 * `changed` is the previous object itself and every changed one is shared
 * against its previous version, so unchanged instances keep their identity too.
 */
import type { RegistryState, Service } from "../../model/registry.ts";
import { shareStructure } from "../../model/share.ts";
import { compareText } from "../../model/order.ts";

/**
 * @param changed names whose rows were re-read; a name missing from `fresh` was deleted.
 * @param fresh parseRegistry of all current rows of exactly the `changed` services.
 * @returns `previous` itself when nothing differs.
 */
export function patchRegistry(previous: RegistryState, changed: Iterable<string>, fresh: RegistryState): RegistryState {
  const reread = new Set(changed);
  // parseRegistry yields services sorted by name, and so does every state this
  // returns: merge the two sorted sequences.
  const incoming = [...fresh.services.values()];
  const services = new Map<string, Service>();
  let differs = false;
  let i = 0;
  for (const [name, service] of previous.services) {
    for (; i < incoming.length && compareText(incoming[i]!.name, name) < 0; i++) {
      services.set(incoming[i]!.name, incoming[i]!); // new service
      differs = true;
    }
    if (!reread.has(name)) {
      services.set(name, service);
    } else if (i < incoming.length && incoming[i]!.name === name) {
      const shared = shareStructure(service, incoming[i]!);
      services.set(name, shared);
      differs ||= shared !== service;
      i++;
    } else {
      differs = true; // deleted
    }
  }
  for (; i < incoming.length; i++) {
    services.set(incoming[i]!.name, incoming[i]!);
    differs = true;
  }
  return differs ? { ...previous, services } : previous;
}
