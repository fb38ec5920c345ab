import type { RegistryState } from "../model/registry.ts";
import type { HttpRoute, RuleRejection, Subset } from "../model/rules.ts";
import { subsetKey } from "../model/snapshot.ts";

/**
 * Mesh-level checks: rules that are valid SQL but would be wrong on a proxy.
 * Each check returns the reason a rule is refused, or null. Pure.
 */

const HEADER_NAME = /^:?[0-9a-zA-Z!#$%&'*+\-.^_|~`]+$/;

/** Constructs RE2 (Envoy's and gRPC's regex engine) refuses, though JavaScript accepts them. */
const NOT_RE2 = /\(\?[=!]|\(\?<[=!]|\\[1-9]/;

export function checkRegex(pattern: string): string | null {
  if (NOT_RE2.test(pattern)) return "uses lookaround or backreferences, which RE2 does not support";
  try {
    new RegExp(pattern, "u");
  } catch (error) {
    return (error as Error).message;
  }
  return null;
}

export function selects(subset: Subset, labels: Readonly<Record<string, string>>): boolean {
  // Runs for every instance and subset of the mesh: no entry arrays.
  const selector = subset.selector;
  for (const key in selector) {
    if (Object.hasOwn(selector, key) && labels[key] !== selector[key]) return false;
  }
  return true;
}

export function checkSubset(subset: Subset, registry: RegistryState): string | null {
  const service = registry.services.get(subset.service);
  if (!service) return `service "${subset.service}" is not in the registry`;
  if (!service.instances.some((instance) => selects(subset, instance.labels))) {
    return `selects no instance of "${subset.service}" (selector ${JSON.stringify(subset.selector)})`;
  }
  return null;
}

export function checkHttpRoute(
  route: HttpRoute,
  registry: RegistryState,
  acceptedSubsets: ReadonlyMap<string, Subset>,
  refusedSubsets: ReadonlyMap<string, string>,
): string | null {
  if (!registry.services.has(route.destination)) {
    return `destination service "${route.destination}" is not in the registry`;
  }
  if (route.source !== null && !registry.services.has(route.source)) {
    return `source service "${route.source}" is not in the registry`;
  }
  if (route.path?.kind === "regex") {
    const problem = checkRegex(route.path.value);
    if (problem) return `path regex ${JSON.stringify(route.path.value)} is invalid: ${problem}`;
  }
  for (const header of route.headers) {
    if (!HEADER_NAME.test(header.name)) return `header name ${JSON.stringify(header.name)} is not a valid HTTP header name`;
    if (header.kind !== "present" && header.value === undefined) return `header "${header.name}" match "${header.kind}" needs a value`;
    if (header.kind === "regex") {
      const problem = checkRegex(header.value ?? "");
      if (problem) return `header "${header.name}" regex is invalid: ${problem}`;
    }
  }
  for (const param of route.queryParams) {
    if (param.name === "") return "query parameter name must not be empty";
    if (param.kind !== "present" && param.value === undefined) return `query parameter "${param.name}" match "${param.kind}" needs a value`;
    if (param.kind === "regex") {
      const problem = checkRegex(param.value ?? "");
      if (problem) return `query parameter "${param.name}" regex is invalid: ${problem}`;
    }
  }
  if (route.destinations.length === 0) return "has no destinations (add rows to mesh.http_route_destinations)";
  const total = route.destinations.reduce((sum, d) => sum + d.weight, 0);
  if (total <= 0) return "destination weights sum to 0; at least one weight must be positive";
  for (const destination of route.destinations) {
    if (!registry.services.has(destination.service)) {
      return `destination "${destination.service}" is not in the registry`;
    }
    if (destination.subset !== null && destination.weight > 0) {
      const key = subsetKey(destination.service, destination.subset);
      if (!acceptedSubsets.has(key)) {
        const why = refusedSubsets.get(key);
        return why
          ? `subset "${key}" is refused: ${why}`
          : `subset "${key}" is not defined in mesh.subsets`;
      }
    }
  }
  return null;
}

export interface CheckedRules {
  readonly subsets: ReadonlyMap<string, Subset>;
  /** Why each refused subset was refused, by `${service}/${name}`. */
  readonly refusedSubsets: ReadonlyMap<string, string>;
  readonly httpRoutes: readonly HttpRoute[];
  /** The subsets' rejections, then the routes'. */
  readonly rejected: readonly RuleRejection[];
}

/**
 * The mesh-level checks of subsets and routes. `routeProblems`, when given,
 * records each route's verdict (its problem, or null) by route object.
 */
export function checkRules(
  registry: RegistryState,
  subsets: readonly Subset[],
  httpRoutes: readonly HttpRoute[],
  routeProblems?: WeakMap<HttpRoute, string | null>,
): CheckedRules {
  const rejected: RuleRejection[] = [];
  const accepted = new Map<string, Subset>();
  const refused = new Map<string, string>();
  for (const subset of subsets) {
    const key = subsetKey(subset.service, subset.name);
    const problem = checkSubset(subset, registry);
    if (problem) {
      refused.set(key, problem);
      rejected.push({ kind: "subset", id: key, message: `subset "${key}" ${problem}` });
    } else {
      accepted.set(key, subset);
    }
  }
  const routes: HttpRoute[] = [];
  for (const route of httpRoutes) {
    const problem = checkHttpRoute(route, registry, accepted, refused);
    routeProblems?.set(route, problem);
    if (problem) rejected.push(routeRejection(route, problem));
    else routes.push(route);
  }
  return { subsets: accepted, refusedSubsets: refused, httpRoutes: routes, rejected };
}

export function routeRejection(route: HttpRoute, problem: string): RuleRejection {
  return { kind: "http_route", id: route.id, message: `http route ${route.id}: ${problem}` };
}
