import type { Logger } from "pino";
import { emptyRegistry, type RegistryState } from "../model/registry.ts";
import { emptyRules, type RuleSet } from "../model/rules.ts";
import type { MeshSnapshot } from "../model/snapshot.ts";
import type { RegistrySource, RuleSource, SourceStatus } from "../sources/source.ts";
import { SnapshotBuilder } from "../translate/incremental-snapshot.ts";
import type { ResourceCache } from "../xds/cache.ts";
import type { XdsMetrics } from "../xds/metrics.ts";
import { Debouncer } from "./debouncer.ts";

/**
 * Sources -> snapshot -> cache. Source changes are coalesced, joined into one
 * snapshot (registries merged, rules checked), handed to the cache, and the
 * verdict on every rule is written back for rule authors.
 */
export interface PipelineOptions {
  readonly registries: readonly RegistrySource[];
  /** Joins the registries' states, in the order given above, into one. */
  readonly mergeRegistries: (states: readonly RegistryState[]) => RegistryState;
  readonly rules: RuleSource;
  readonly cache: ResourceCache;
  readonly metrics: XdsMetrics;
  readonly logger: Logger;
  readonly debounceMs: number;
  readonly maxDelayMs: number;
}

export class MeshPipeline {
  private readonly registryStates: RegistryState[];
  private readonly receivedRegistry: boolean[];
  private rules: RuleSet = emptyRules;
  private receivedRules = false;
  private readonly debouncer: Debouncer;
  /** Keeps unchanged parts of successive snapshots identical (the cache's endpoint fast path relies on it). */
  private readonly builder = new SnapshotBuilder();
  private snapshot: MeshSnapshot | null = null;
  private lastPublishedRejections = "";
  /** The rejection list last written (snapshots that keep their verdicts share it: no need to fingerprint it again). */
  private lastPublishedRejected: MeshSnapshot["rejected"] | null = null;
  private lastPublishedRules: RuleSet | null = null;

  constructor(private readonly options: PipelineOptions) {
    this.registryStates = options.registries.map(() => emptyRegistry);
    this.receivedRegistry = options.registries.map(() => false);
    this.debouncer = new Debouncer(options.debounceMs, options.maxDelayMs, () => this.rebuild(), (error) =>
      options.logger.error({ err: error }, "failed to build mesh snapshot"),
    );
  }

  async start(): Promise<void> {
    await Promise.all([
      ...this.options.registries.map((source, index) =>
        source.start((state) => {
          this.registryStates[index] = state;
          this.receivedRegistry[index] = true;
          this.debouncer.trigger();
        }),
      ),
      this.options.rules.start((rules) => {
        this.rules = rules;
        this.receivedRules = true;
        this.debouncer.trigger();
      }),
    ]);
  }

  async stop(): Promise<void> {
    this.debouncer.stop();
    await Promise.all([...this.options.registries.map((source) => source.stop()), this.options.rules.stop()]);
  }

  /** Ready once every source has delivered its first state and a snapshot was built. */
  get ready(): boolean {
    return this.snapshot !== null;
  }

  currentSnapshot(): MeshSnapshot | null {
    return this.snapshot;
  }

  sourceStatuses(): SourceStatus[] {
    return [...this.options.registries.map((source) => source.status()), this.options.rules.status()];
  }

  private async rebuild(): Promise<void> {
    // Never serve a half-known mesh: an empty registry would remove every cluster.
    if (!this.receivedRules || this.receivedRegistry.some((received) => !received)) return;
    const registry = this.options.mergeRegistries(this.registryStates);
    // The rules this snapshot is built from. this.rules may change while the
    // status write below is awaited; recording that newer set as published
    // would skip writing its verdicts in the next rebuild.
    const rules = this.rules;
    const snapshot = this.builder.build(registry, rules);
    this.snapshot = snapshot;
    this.options.metrics.snapshotBuilds.inc();
    this.options.cache.setSnapshot(snapshot);
    // Rule verdicts only change when rules or the registry they refer to change;
    // write them back only when they differ from what was last written. An
    // instance-only change keeps the very same list (SnapshotBuilder), so the
    // identity test spares serializing every rejection on each endpoint change.
    if (rules === this.lastPublishedRules && snapshot.rejected === this.lastPublishedRejected) return;
    const fingerprint = JSON.stringify(snapshot.rejected);
    if (fingerprint === this.lastPublishedRejections && rules === this.lastPublishedRules) {
      this.lastPublishedRejected = snapshot.rejected;
      return;
    }
    for (const rejection of snapshot.rejected) this.options.logger.warn({ rule: rejection }, "rule refused");
    try {
      await this.options.rules.publishRuleStatus(rules, snapshot.rejected);
      this.lastPublishedRejections = fingerprint;
      this.lastPublishedRejected = snapshot.rejected;
      this.lastPublishedRules = rules;
    } catch (error) {
      this.options.logger.error({ err: error }, "could not write rule status back to the database");
    }
  }
}
