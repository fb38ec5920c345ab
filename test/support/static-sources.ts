import { pino } from "pino";
import { startSignalbox, type RunningSignalbox } from "../../src/app.ts";
import type { RegistryState } from "../../src/model/registry.ts";
import { emptyRules, type RuleRejection, type RuleSet } from "../../src/model/rules.ts";
import type { RegistrySource, RuleSource, SourceStatus } from "../../src/sources/source.ts";
import { resourceGate } from "../../src/xds/validation-gate.ts";

/** In-memory sources for server tests that do not need a database. */
export class StaticRegistry implements RegistrySource {
  readonly name = "static-registry";
  private onChange: ((state: RegistryState) => void) | null = null;

  constructor(private state: RegistryState) {}

  async start(onChange: (state: RegistryState) => void): Promise<void> {
    this.onChange = onChange;
    onChange(this.state);
  }

  async stop(): Promise<void> {
    this.onChange = null;
  }

  status(): SourceStatus {
    return { name: this.name, ready: true, degraded: false, lastError: null, revision: "static" };
  }

  /** What the source serves now. */
  current(): RegistryState {
    return this.state;
  }

  set(state: RegistryState): void {
    this.state = state;
    this.onChange?.(state);
  }
}

export class StaticRules implements RuleSource {
  readonly name = "static-rules";
  published: readonly RuleRejection[] = [];

  constructor(private readonly rules: RuleSet = emptyRules) {}

  async start(onChange: (rules: RuleSet) => void): Promise<void> {
    onChange(this.rules);
  }

  async stop(): Promise<void> {}

  status(): SourceStatus {
    return { name: this.name, ready: true, degraded: false, lastError: null, revision: "static" };
  }

  async publishRuleStatus(_rules: RuleSet, rejected: readonly RuleRejection[]): Promise<void> {
    this.published = rejected;
  }
}

/**
 * Signalbox on loopback with ephemeral ports, serving `registry` (and no rules),
 * with field validation on and near-immediate pushes: for server-level tests.
 */
export function startStaticSignalbox(registry: StaticRegistry, initial: RegistryState): Promise<RunningSignalbox> {
  return startSignalbox({
    sources: { registries: [registry], mergeRegistries: ([s]) => s ?? initial, rules: new StaticRules() },
    gate: resourceGate(),
    logger: pino({ level: "silent" }),
    xdsHost: "127.0.0.1",
    xdsPort: 0,
    adminHost: "127.0.0.1",
    adminPort: 0,
    debounceMs: 1,
    maxDelayMs: 5,
  });
}
