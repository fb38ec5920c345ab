import type { Message } from "@bufbuild/protobuf";
import type { GenMessage } from "@bufbuild/protobuf/codegenv2";
import { ClusterSchema } from "../gen/envoy/config/cluster/v3/cluster_pb.ts";
import { ClusterLoadAssignmentSchema } from "../gen/envoy/config/endpoint/v3/endpoint_pb.ts";
import { ListenerSchema } from "../gen/envoy/config/listener/v3/listener_pb.ts";
import { RouteConfigurationSchema } from "../gen/envoy/config/route/v3/route_pb.ts";

/** The resource kinds Signalbox serves, in make-before-break push order. */
export const RESOURCE_KINDS = ["cluster", "endpoint", "listener", "route"] as const;
export type ResourceKind = (typeof RESOURCE_KINDS)[number];

export const TYPE_URLS: Record<ResourceKind, string> = {
  cluster: "type.googleapis.com/envoy.config.cluster.v3.Cluster",
  endpoint: "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
  listener: "type.googleapis.com/envoy.config.listener.v3.Listener",
  route: "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
};

export const SCHEMAS: Record<ResourceKind, GenMessage<Message>> = {
  cluster: ClusterSchema as GenMessage<Message>,
  endpoint: ClusterLoadAssignmentSchema as GenMessage<Message>,
  listener: ListenerSchema as GenMessage<Message>,
  route: RouteConfigurationSchema as GenMessage<Message>,
};

const KIND_BY_TYPE_URL = new Map<string, ResourceKind>(
  RESOURCE_KINDS.map((kind) => [TYPE_URLS[kind], kind]),
);

export function kindOfTypeUrl(typeUrl: string): ResourceKind | undefined {
  return KIND_BY_TYPE_URL.get(typeUrl);
}

/** Resources of one kind keyed by name. */
export type ResourceMap = ReadonlyMap<string, Message>;

/** A read-only resource map whose entries some other structure provides (`contents`). */
abstract class DerivedMap implements ResourceMap {
  protected abstract contents(): ReadonlyMap<string, Message>;

  get size(): number {
    return this.contents().size;
  }

  get(name: string): Message | undefined {
    return this.contents().get(name);
  }

  has(name: string): boolean {
    return this.contents().has(name);
  }

  entries(): MapIterator<[string, Message]> {
    return this.contents().entries();
  }

  keys(): MapIterator<string> {
    return this.contents().keys();
  }

  values(): MapIterator<Message> {
    return this.contents().values();
  }

  [Symbol.iterator](): MapIterator<[string, Message]> {
    return this.entries();
  }

  forEach(callback: (value: Message, key: string, map: ReadonlyMap<string, Message>) => void, thisArg?: unknown): void {
    for (const [name, message] of this.contents()) callback.call(thisArg, message, name, this);
  }
}

/**
 * A resource map made of shared parts (each upstream service's clusters, its
 * endpoints) without copying them into one map: a sidecar's view holds the
 * same parts as thousands of others, and the cache encodes each part once
 * (xds/cache.ts). Reads see the parts merged as Map.set would merge them (a
 * later part wins a name; parts of one view never share names in practice).
 */
export class ComposedMap extends DerivedMap {
  private flat: Map<string, Message> | null = null;

  constructor(readonly parts: readonly ResourceMap[]) {
    super();
  }

  protected contents(): Map<string, Message> {
    if (!this.flat) {
      this.flat = new Map();
      for (const part of this.parts) for (const [name, message] of part) this.flat.set(name, message);
    }
    return this.flat;
  }
}

/**
 * A resource map built afresh on every read and never held, for resources the
 * cache encodes once and never reads again as messages (endpoint assignments:
 * one message per instance of the mesh). Held, those messages would survive
 * into V8's old generation, copied on the way, and stay there for as long as
 * the service's instances are unchanged; built per read, they die young. The
 * object itself is what the cache remembers the encoded resources by, and
 * what translation reuses across snapshots. `build` must be pure: every read
 * gives equal messages.
 */
export class TransientMap extends DerivedMap {
  constructor(private readonly build: () => ReadonlyMap<string, Message>) {
    super();
  }

  protected contents(): ReadonlyMap<string, Message> {
    return this.build();
  }
}

/** Everything one proxy should have, per kind. */
export interface ResourceSet extends Readonly<Record<ResourceKind, ResourceMap>> {
  /**
   * The services whose routes (snapshot.routesByDestination) the translation
   * read: when routes change only for other services, the view is unchanged
   * and the cache does not re-translate it. Absent: it may read any.
   */
  readonly routeReads?: ReadonlySet<string>;
  /**
   * The names of the upstream services the view was translated for
   * (scope.ts), the only way routes reach clusters, endpoints and listeners:
   * when only routes changed and the scope is the same, the cache
   * re-translates just the routes (translateRoutes). Absent: every kind may
   * depend on the routes.
   */
  readonly scope?: readonly string[];
}
