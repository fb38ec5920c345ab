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

type SingledOut = ReadonlyMap<string, ReadonlySet<string>>;

interface Listed {
  readonly routePolicies: MeshSnapshot["routePolicies"];
  readonly clusterPolicies: MeshSnapshot["clusterPolicies"];
  readonly callers: SingledOut;
}

/**
 * By the snapshot's routes (shared by snapshots until a route changes), then
 * checked against its policies: an endpoint change's snapshot keeps all three,
 * so it keeps the list too.
 */
const listedByRoutes = new WeakMap<MeshSnapshot["routesByDestination"], Listed>();

/** Per destination, the callers its rules and policies single out. */
function singledOutCallers(snapshot: MeshSnapshot): SingledOut {
  const listed = listedByRoutes.get(snapshot.routesByDestination);
  if (listed && listed.routePolicies === snapshot.routePolicies && listed.clusterPolicies === snapshot.clusterPolicies) return listed.callers;
  const callers = listSingledOut(snapshot);
  listedByRoutes.set(snapshot.routesByDestination, { routePolicies: snapshot.routePolicies, clusterPolicies: snapshot.clusterPolicies, callers });
  return callers;
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
