/**
 * Change hints: cheap, datacenter-wide signals that tell the source *which*
 * services changed, so it can read those at once instead of waiting for their
 * turn in the rotation of per-service blocking queries.
 *
 * The per-service health answers stay the only thing the source emits; a hint
 * only decides what is read next. A wrong or missed hint therefore costs a read
 * or some latency, never a wrong state.
 *
 * The critical-checks hint (a blocking watch): GET /v1/health/state/critical lists every critical
 * check in the datacenter (maintenance checks are critical too), which is small
 * in a healthy cluster. Its X-Consul-Index is the index of the whole checks
 * table, but Consul wakes a blocking query on it only when a check enters,
 * leaves or changes within the critical set. The source compares, for every
 * service it has read, the critical checks this answer names for it (its own
 * service checks by ServiceName, plus node-level checks of the nodes its
 * instances run on) with the critical checks in its last health answer, and
 * refreshes the services that disagree.
 *
 * The catalog-change locator (one plain read when the catalog index moves):
 * GET /v1/health/state/any lists every check with its status. Compared the same
 * way (with status), it names the services that gained or lost checks (an
 * instance with checks registered or deregistered) or whose checks changed
 * state (warnings included), so those are read before the sweep reaches them.
 */
import type { ConsulStateCheck } from "./consul-types.ts";

/**
 * Check ids are unique per node in Consul: (node, CheckID) names a check. With a
 * status, the key also changes when the check changes state.
 */
export function checkKey(node: string, checkId: string, status?: string): string {
  return status === undefined ? `${node}\u0000${checkId}` : `${node}\u0000${checkId}\u0000${status}`;
}

/** An order-independent signature of a set of check keys ("" when empty). */
export function signature(keys: Iterable<string>): string {
  return [...keys].sort().join("\u0001");
}

/**
 * A list of checks from GET /v1/health/state/:state, indexed for per-service
 * lookups: the critical-checks watch keys checks by (node, CheckID); the
 * all-checks read that locates catalog changes (see source.ts) adds the status.
 */
export class CheckIndex {
  /** Service name -> keys of its critical service checks. */
  private byService = new Map<string, string[]>();
  /** Node -> keys of its critical node-level checks (serfHealth, _node_maintenance, ...). */
  private byNode = new Map<string, string[]>();
  private count = 0;
  private known = false;

  constructor(private readonly withStatus: boolean) {}

  /** Whether an answer has been recorded. */
  get ready(): boolean {
    return this.known;
  }

  /** Checks in the last answer. */
  get size(): number {
    return this.count;
  }

  update(checks: readonly ConsulStateCheck[]): void {
    const byService = new Map<string, string[]>();
    const byNode = new Map<string, string[]>();
    for (const c of checks) {
      const key = checkKey(c.Node, c.CheckID, this.withStatus ? c.Status : undefined);
      if (c.ServiceID === "") push(byNode, c.Node, key);
      else push(byService, c.ServiceName, key);
    }
    this.byService = byService;
    this.byNode = byNode;
    this.count = checks.length;
    this.known = true;
  }

  /**
   * The checks this list implies for service `name` whose instances run on
   * `nodes` (its service checks, and the node-level checks of those nodes), as a
   * signature comparable with `CatalogState.criticalSignature` (without status)
   * or `CatalogState.checksSignature` (with status).
   */
  signature(name: string, nodes: readonly string[]): string {
    const own = this.byService.get(name);
    let keys: string[] | null = own === undefined ? null : [...own];
    for (const node of nodes) {
      const nodeChecks = this.byNode.get(node);
      if (nodeChecks === undefined) continue;
      keys ??= [];
      keys.push(...nodeChecks);
    }
    return keys === null ? "" : signature(new Set(keys));
  }
}

function push(map: Map<string, string[]>, key: string, value: string): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}
