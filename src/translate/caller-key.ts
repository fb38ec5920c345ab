import { forEachClusterPolicySource } from "../model/cluster-policies.ts";
import type { Proxy } from "../model/proxy.ts";
import type { Service } from "../model/registry.ts";
import { forEachPolicySource } from "../model/route-policies.ts";
import type { MeshSnapshot } from "../model/snapshot.ts";

/**
 * The calling service when a rule or a source-specific policy of `service`
 * names it, else "*" (every such caller sees the same routes): the key under
 * which a caller's virtual host for `service` is built and shared.
 *
 * Asked once per view and upstream (tens of thousands of times in a full
 * build), so the callers singled out are listed once per set of rules rather
 * than searched for in each destination's rules and policies per call.
 */
export function callerKey(snapshot: MeshSnapshot, service: Service, proxy: Proxy): string {
  return singledOutCallers(snapshot).get(service.name)?.has(proxy.service) ? proxy.service : "*";
}

/** Whether any rule or source-specific policy names `caller`: if not, its key is "*" for every service. */
export function singledOutAnywhere(snapshot: MeshSnapshot, caller: string): boolean {
  return listedFor(snapshot).anywhere.has(caller);
}

type SingledOut = ReadonlyMap<string, ReadonlySet<string>>;

interface Listed {
  readonly routePolicies: MeshSnapshot["routePolicies"];
  readonly clusterPolicies: MeshSnapshot["clusterPolicies"];
  readonly callers: SingledOut;
  /** Every caller in `callers`, whatever the destination. */
  readonly anywhere: ReadonlySet<string>;
}

/**
 * By the snapshot's routes (shared by snapshots until a route changes), then
 * checked against its policies: an endpoint change's snapshot keeps all three,
 * so it keeps the list too.
 */
const listedByRoutes = new WeakMap<MeshSnapshot["routesByDestination"], Listed>();

/** Per destination, the callers its rules and policies single out. */
function singledOutCallers(snapshot: MeshSnapshot): SingledOut {
  return listedFor(snapshot).callers;
}

function listedFor(snapshot: MeshSnapshot): Listed {
  const known = listedByRoutes.get(snapshot.routesByDestination);
  if (known && known.routePolicies === snapshot.routePolicies && known.clusterPolicies === snapshot.clusterPolicies) return known;
  const callers = listSingledOut(snapshot);
  const anywhere = new Set<string>();
  for (const sources of callers.values()) for (const source of sources) anywhere.add(source);
  const listed = { routePolicies: snapshot.routePolicies, clusterPolicies: snapshot.clusterPolicies, callers, anywhere };
  listedByRoutes.set(snapshot.routesByDestination, listed);
  return listed;
}

function listSingledOut(snapshot: MeshSnapshot): SingledOut {
  const callers = new Map<string, Set<string>>();
  const add = (destination: string, source: string): void => {
    const sources = callers.get(destination);
    if (sources) sources.add(source);
    else callers.set(destination, new Set([source]));
  };
  for (const [destination, rules] of snapshot.routesByDestination) {
    for (const rule of rules) if (rule.source !== null) add(destination, rule.source);
  }
  forEachPolicySource(snapshot.routePolicies, add);
  forEachClusterPolicySource(snapshot.clusterPolicies, add);
  return callers;
}
