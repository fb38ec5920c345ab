/**
 * Rule rows -> RuleSet, re-parsing only what changed. loadRuleRows hands the
 * rows of a group it did not re-read over as the same arrays; the pieces
 * parsed from those are taken over as they were, and the result shares
 * structure with the last one, so an unchanged piece (every dependency and
 * subset when a route changes) is neither parsed nor compared again. Routes
 * read through the route log are parsed alone and patched in; the others keep
 * their objects.
 */
import { shareStructure } from "../../model/share.ts";
import type { RuleSet } from "../../model/rules.ts";
import { assembleRules, parseRulePieces, type RulePieces } from "./parse-rules.ts";
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
    const parsed = parseRulePieces(rows, last, routePatch);
    const rules = last ? shareStructure(last.rules, assembleRules(parsed)) : assembleRules(parsed);
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
