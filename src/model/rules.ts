/**
 * How traffic should behave: governance rules as read from the rule tables.
 * Rules arrive here already shape-checked by SQL; mesh-level checks (weights,
 * unknown services) happen in translate/rule-check.ts.
 */
import type { RouteExtensions, RoutePolicies, RoutePolicyKind } from "./route-policies.ts";
import type { ClusterPolicies, ClusterPolicyKind } from "./cluster-policies.ts";

/** A named label selector over a service's instances. */
export interface Subset {
  readonly service: string;
  readonly name: string;
  /** Every key must be present on the instance with exactly this value. */
  readonly selector: Readonly<Record<string, string>>;
}

export type PathMatch =
  | { readonly kind: "prefix"; readonly value: string }
  | { readonly kind: "exact"; readonly value: string }
  | { readonly kind: "regex"; readonly value: string };

export type StringMatchKind = "exact" | "prefix" | "suffix" | "regex" | "present";

export interface HeaderMatch {
  readonly name: string;
  readonly kind: StringMatchKind;
  /** Absent for "present". */
  readonly value?: string;
  readonly invert: boolean;
}

export interface QueryParamMatch {
  readonly name: string;
  readonly kind: StringMatchKind;
  readonly value?: string;
}

export interface WeightedDestination {
  readonly service: string;
  /** null = every instance of the service. */
  readonly subset: string | null;
  readonly weight: number;
}

export interface RetryPolicy {
  /** Envoy/gRPC retry_on conditions, e.g. "5xx", "connect-failure", "unavailable". */
  readonly retryOn: readonly string[];
  readonly attempts: number;
  readonly perTryTimeoutMs: number | null;
}

export interface HttpRoute {
  /** Database id of the http_routes row. */
  readonly id: string;
  /** The service whose traffic this route governs. */
  readonly destination: string;
  /** null = applies to every caller; otherwise only to this calling service. */
  readonly source: string | null;
  /** Lower runs first; ties broken by id. */
  readonly priority: number;
  readonly path: PathMatch | null;
  /** Upper-case HTTP method, or null for any. */
  readonly method: string | null;
  readonly headers: readonly HeaderMatch[];
  readonly queryParams: readonly QueryParamMatch[];
  readonly destinations: readonly WeightedDestination[];
  readonly timeoutMs: number | null;
  readonly retry: RetryPolicy | null;
  /**
   * Rewrites, header edits, redirect, direct response, mirrors (route-policies.ts).
   * Set on accepted routes in the snapshot; absent when the route has none.
   */
  readonly extensions?: RouteExtensions;
}

export interface RuleSet {
  readonly subsets: readonly Subset[];
  /** Enabled routes only, any order; translation sorts them. */
  readonly httpRoutes: readonly HttpRoute[];
  /**
   * Rows the source could not even parse into the model (for example JSON of the
   * wrong shape in a column), reported like mesh-level rejections.
   */
  readonly rejected: readonly RuleRejection[];
  /**
   * Declared service dependencies (mesh.service_dependencies): which services a
   * service may call. A service with none declared may call every service.
   * Optional so sources without the table need not set it.
   */
  readonly dependencies?: readonly ServiceDependency[];
  /** Route-side policies and route extensions (route-policies.ts); optional like dependencies. */
  readonly routePolicies?: RoutePolicies;
  /** Cluster-side policies and TCP routes (cluster-policies.ts); optional like dependencies. */
  readonly clusterPolicies?: ClusterPolicies;
}

/** `service` calls `dependsOn`; plain names, like the other rule tables. */
export interface ServiceDependency {
  readonly service: string;
  readonly dependsOn: string;
}

export type RuleKind = "http_route" | "subset" | RoutePolicyKind | ClusterPolicyKind;

/** Why a rule row does not reach any proxy; written back for its author to read. */
export interface RuleRejection {
  readonly kind: RuleKind;
  readonly id: string;
  readonly message: string;
}

export const emptyRules: RuleSet = { subsets: [], httpRoutes: [], rejected: [] };
