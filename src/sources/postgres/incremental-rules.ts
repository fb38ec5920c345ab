/**
 * Rule rows -> RuleSet, re-parsing only what changed. loadRuleRows hands the
 * rows of a group it did not re-read over as the same arrays; the pieces
 * parsed from those are taken over as they were, and the result shares
 * structure with the last one, so an unchanged piece (every dependency and
 * subset when a route changes) is neither parsed nor compared again.
 */
import { shareStructure } from "../../model/share.ts";
import type { RuleSet } from "../../model/rules.ts";
import { assembleRules, parseRulePieces, type RulePieces } from "./parse-rules.ts";
import type { RuleRows } from "./rows.ts";

export class IncrementalRuleParser {
  #last: { rows: RuleRows; pieces: RulePieces; rules: RuleSet } | null = null;

  /** parseRules(rows), sharing structure with the last result. */
  parse(rows: RuleRows): RuleSet {
    const last = this.#last;
    const parsed = parseRulePieces(rows, last);
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
