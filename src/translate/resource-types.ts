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

/** Everything one proxy should have, per kind. */
export type ResourceSet = Readonly<Record<ResourceKind, ResourceMap>>;
