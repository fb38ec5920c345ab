import type { Message } from "@bufbuild/protobuf";
import type { Logger } from "pino";
import type { Proxy } from "../model/proxy.ts";
import type { MeshSnapshot } from "../model/snapshot.ts";
import { RESOURCE_KINDS, type ResourceKind, type ResourceSet } from "../translate/resource-types.ts";
import { encodeResource, type EncodedResource } from "./encoding.ts";
import { viewKey } from "./node.ts";

/**
 * The cache owns versions: it turns the current snapshot into encoded resources
 * per proxy view and hands the same bytes to every stream that needs them. It
 * never sees a stream; streams ask it for views and listen for changes.
 */

export type Translator = (snapshot: MeshSnapshot, proxy: Proxy) => ResourceSet;

/** Field-level validation of one resource; returns human-readable violations. */
export type ResourceGate = (kind: ResourceKind, name: string, message: Message) => string[];

export type EncodedSet = Readonly<Record<ResourceKind, ReadonlyMap<string, EncodedResource>>>;

export interface InvalidResource {
  readonly kind: ResourceKind;
  readonly name: string;
  readonly violations: readonly string[];
}

export interface ProxyView {
  readonly generation: number;
  readonly resources: EncodedSet;
}

interface Interned {
  readonly encoded: EncodedResource;
  readonly violations: readonly string[];
}

export class ResourceCache {
  private snapshot: MeshSnapshot | null = null;
  private generation = 0;
  private views = new Map<string, ProxyView>();
  /** Encoded resources by kind/name/version; the previous generation's are reused. */
  private interned = new Map<string, Interned>();
  private previousInterned = new Map<string, Interned>();
  private readonly invalid = new Map<string, InvalidResource>();
  private readonly listeners = new Set<(generation: number) => void>();

  constructor(
    private readonly translator: Translator,
    private readonly gate: ResourceGate,
    private readonly logger: Logger,
  ) {}

  get currentGeneration(): number {
    return this.generation;
  }

  get hasSnapshot(): boolean {
    return this.snapshot !== null;
  }

  currentSnapshot(): MeshSnapshot | null {
    return this.snapshot;
  }

  setSnapshot(snapshot: MeshSnapshot): void {
    this.snapshot = snapshot;
    this.generation += 1;
    this.views = new Map();
    this.previousInterned = this.interned;
    this.interned = new Map();
    for (const listener of this.listeners) listener(this.generation);
  }

  onChange(listener: (generation: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resources that failed Envoy's field validation and were withheld, for the admin API. */
  invalidResources(): InvalidResource[] {
    return [...this.invalid.values()];
  }

  /** The encoded resources for a proxy, shared by every proxy with the same view key. */
  viewFor(proxy: Proxy): ProxyView | null {
    if (!this.snapshot) return null;
    const key = viewKey(proxy);
    let view = this.views.get(key);
    if (!view) {
      view = { generation: this.generation, resources: this.encodeSet(this.translator(this.snapshot, proxy)) };
      this.views.set(key, view);
    }
    return view;
  }

  private encodeSet(set: ResourceSet): EncodedSet {
    const out = {} as Record<ResourceKind, Map<string, EncodedResource>>;
    for (const kind of RESOURCE_KINDS) {
      const encoded = new Map<string, EncodedResource>();
      for (const [name, message] of set[kind]) {
        const entry = this.intern(kind, name, message);
        if (entry.violations.length === 0) encoded.set(name, entry.encoded);
      }
      out[kind] = encoded;
    }
    return out;
  }

  /** Encode (and validate) each distinct resource version once. */
  private intern(kind: ResourceKind, name: string, message: Message): Interned {
    const fresh = encodeResource(kind, name, message);
    const key = `${kind}\u0000${name}\u0000${fresh.version}`;
    const known = this.interned.get(key) ?? this.previousInterned.get(key);
    if (known) {
      this.interned.set(key, known);
      return known;
    }
    const violations = this.gate(kind, name, message);
    const invalidKey = `${kind}\u0000${name}`;
    if (violations.length > 0) {
      this.invalid.set(invalidKey, { kind, name, violations });
      this.logger.error({ kind, name, violations }, "resource fails Envoy field validation; withheld from proxies");
    } else {
      this.invalid.delete(invalidKey);
    }
    const entry = { encoded: fresh, violations };
    this.interned.set(key, entry);
    return entry;
  }
}
