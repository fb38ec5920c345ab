import type { RegistryState } from "../model/registry.ts";
import type { RuleRejection, RuleSet } from "../model/rules.ts";

/**
 * The contract every source implements. A source watches one part of the outside
 * world and calls `onChange` with its complete current state whenever that state
 * may have changed; sources diff before calling, so a call means "something
 * differs". Sources never push partial or empty state because they failed: on
 * failure they keep the last good state and report themselves degraded.
 */
export interface SourceStatus {
  readonly name: string;
  /** True once the first full state has been delivered. */
  readonly ready: boolean;
  /** True while the source cannot reach its backend and serves last known state. */
  readonly degraded: boolean;
  readonly lastError: string | null;
  /** A source-specific position (Consul index, database revision). */
  readonly revision: string;
}

export interface RegistrySource {
  readonly name: string;
  start(onChange: (state: RegistryState) => void): Promise<void>;
  stop(): Promise<void>;
  status(): SourceStatus;
}

export interface RuleSource {
  readonly name: string;
  start(onChange: (rules: RuleSet) => void): Promise<void>;
  stop(): Promise<void>;
  status(): SourceStatus;
  /**
   * Record which rules were refused (and that the rest were accepted) where rule
   * authors can read it back. Called after each snapshot is built.
   */
  publishRuleStatus(rules: RuleSet, rejected: readonly RuleRejection[]): Promise<void>;
}
