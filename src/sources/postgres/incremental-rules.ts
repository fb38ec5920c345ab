/**
 * Rule rows -> RuleSet, re-parsing only what changed. loadRuleRows hands the
 * rows of a group it did not re-read over as the same arrays; the pieces
 * parsed from those are taken over as they were, and the result shares
 * structure with the last one, so an unchanged piece (every dependency and
 * subset when a route changes) is neither parsed nor compared again. Routes
 * read through the route log are parsed alone and patched in; the others keep
 * their objects.
 *
 * Routes are shared with the last ones by id, not by position as
 * shareStructure shares arrays: after a route is added or removed, every
 * later route would otherwise be compared with its neighbour and come out a
 * new object, and downstream would take it for a changed rule.
 */
import { shareStructure } from "../../model/share.ts";
import type { HttpRoute, RuleSet } from "../../model/rules.ts";
import { assembleRules, parseRulePieces, patchesLast, type RulePieces } from "./parse-rules.ts";
import type { RoutePatch, RuleRows } from "./rows.ts";

export class IncrementalRuleParser {
  #last: { rows: RuleRows; pieces: RulePieces; rules: RuleSet } | null = null;

  /**
   * parseRules(rows), sharing structure with the last result. `routePatch`:
   * the read patched these routes into the last call's route rows (and
   * `rows` holds the result), so only they are parsed again.
   */
  parse(rows: RuleRows, routePatch: RoutePatch | null = null): RuleSet {
    const last = this.#last;
    const patch = routePatch && last && patchesLast(routePatch, last.rows) ? routePatch : null;
    const parsed = parseRulePieces(rows, last, patch);
    // A patch shares its routes with the last ones itself (patchHttpRoutes).
    const rules = last ? shareRules(last.rules, assembleRules(parsed), patch === null) : assembleRules(parsed);
    // Keep the shared values as the pieces, so the next call takes over what was returned.
    const pieces: RulePieces = {
      subsets: { value: rules.subsets, rejected: parsed.subsets.rejected },
      httpRoutes: { value: rules.httpRoutes, rejected: parsed.httpRoutes.rejected },
      routePolicies: parsed.routePolicies && rules.routePolicies ? { value: rules.routePolicies, rejected: parsed.routePolicies.rejected } : null,
      clusterPolicies: parsed.clusterPolicies && rules.clusterPolicies ? { value: rules.clusterPolicies, rejected: parsed.clusterPolicies.rejected } : null,
      dependencies: rules.dependencies ?? null,
    };
    this.#last = { rows, pieces, rules };
    return rules;
  }
}

/** shareStructure(last, next), with the routes shared by id (see above) unless `next`'s already are. */
function shareRules(last: RuleSet, next: RuleSet, shareRoutes: boolean): RuleSet {
  const httpRoutes = shareRoutes ? shareRoutesById(last.httpRoutes, next.httpRoutes) : next.httpRoutes;
  // The routes are left out of the generic walk by handing it last's own.
  const rest = shareStructure(last, { ...next, httpRoutes: last.httpRoutes });
  return httpRoutes === last.httpRoutes ? rest : { ...rest, httpRoutes };
}

/** `next` with each route equal to the last route of its id replaced by that route; `last` when all are and nothing was added or removed. */
function shareRoutesById(last: readonly HttpRoute[], next: readonly HttpRoute[]): readonly HttpRoute[] {
  if (last === next) return last;
  let byId: Map<string, HttpRoute> | null = null;
  let same = last.length === next.length;
  const out: HttpRoute[] = [];
  for (let i = 0; i < next.length; i++) {
    const route = next[i]!;
    let shared = route;
    if (last[i] !== route) {
      byId ??= routesById(last);
      const before = byId.get(route.id);
      if (before) shared = shareStructure(before, route);
    }
    if (shared !== last[i]) same = false;
    out.push(shared);
  }
  return same ? last : out;
}

function routesById(routes: readonly HttpRoute[]): Map<string, HttpRoute> {
  const byId = new Map<string, HttpRoute>();
  for (const route of routes) byId.set(route.id, route);
  return byId;
}
