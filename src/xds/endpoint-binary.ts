import { toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { LocalitySchema } from "../gen/envoy/config/core/v3/base_pb.ts";
import {
  ClusterLoadAssignment_PolicySchema,
  ClusterLoadAssignmentSchema,
  type ClusterLoadAssignment,
} from "../gen/envoy/config/endpoint/v3/endpoint_pb.ts";
import type { SocketAddress } from "../gen/envoy/config/core/v3/address_pb.ts";
import {
  LbEndpointSchema,
  type Endpoint,
  type LbEndpoint,
  type LocalityLbEndpoints,
} from "../gen/envoy/config/endpoint/v3/endpoint_components_pb.ts";
import { binaryOnce } from "./compose-binary.ts";

/**
 * ClusterLoadAssignment encoding for the hot path: endpoint resources are the
 * most numerous and the ones every endpoint change re-encodes. The assignment
 * and its locality groups are written directly, each endpoint (one message per
 * instance, shared by every assignment and snapshot holding it) is copied from
 * its once-encoded bytes. Byte-identical to toBinary; an assignment using a
 * field this writer does not handle is encoded by toBinary instead.
 * test/xds/endpoint-binary.test.ts pins both, and fails when the protos gain a
 * field that this file has not decided about.
 */

/** Fields written here, or checked to be unset before taking this path. */
export const HANDLED_FIELDS = {
  ClusterLoadAssignment: ["cluster_name", "endpoints", "policy", "named_endpoints"],
  LocalityLbEndpoints: ["locality", "lb_endpoints", "load_balancing_weight", "priority", "proximity", "metadata", "load_balancer_endpoints", "leds_cluster_locality_config"],
  LbEndpoint: ["endpoint", "endpoint_name", "health_status", "metadata", "load_balancing_weight"],
  Endpoint: ["address", "health_check_config", "hostname", "additional_addresses"],
  Address: ["socket_address", "pipe", "envoy_internal_address"],
  SocketAddress: ["protocol", "address", "port_value", "named_port", "resolver_name", "ipv4_compat"],
} as const;

/** Reused writers (finish() keeps the grown buffer); one per function, none re-entered. */
const writer = new BinaryWriter();
const endpointBytes = new WeakMap<LbEndpoint, Uint8Array>();

export function clusterLoadAssignmentBinary(assignment: ClusterLoadAssignment): Uint8Array {
  if (!handled(assignment)) return toBinary(ClusterLoadAssignmentSchema, assignment);
  // Field-number order, as protobuf-es writes: 1 cluster_name, 2 endpoints, 4 policy (5 named_endpoints is empty).
  if (assignment.clusterName !== "") writer.tag(1, WireType.LengthDelimited).string(assignment.clusterName);
  for (const group of assignment.endpoints) {
    writer.tag(2, WireType.LengthDelimited).fork();
    writeGroup(group);
    writer.join();
  }
  if (assignment.policy !== undefined) {
    writer.tag(4, WireType.LengthDelimited).bytes(binaryOnce(ClusterLoadAssignment_PolicySchema, assignment.policy));
  }
  return writer.finish();
}

/** LocalityLbEndpoints: 1 locality, 2 lb_endpoints, 3 load_balancing_weight (a UInt32Value), 5 priority. */
function writeGroup(group: LocalityLbEndpoints): void {
  if (group.locality !== undefined) writer.tag(1, WireType.LengthDelimited).bytes(binaryOnce(LocalitySchema, group.locality));
  for (const endpoint of group.lbEndpoints) writer.tag(2, WireType.LengthDelimited).bytes(lbEndpointBinary(endpoint));
  if (group.loadBalancingWeight !== undefined) {
    // A wrapper message whose value field is left out when zero, like any proto3 scalar.
    writer.tag(3, WireType.LengthDelimited).fork();
    if (group.loadBalancingWeight !== 0) writer.tag(1, WireType.Varint).uint32(group.loadBalancingWeight);
    writer.join();
  }
  if (group.priority !== 0) writer.tag(5, WireType.Varint).uint32(group.priority);
}

/** An endpoint's bytes, once per message object. */
function lbEndpointBinary(endpoint: LbEndpoint): Uint8Array {
  let bytes = endpointBytes.get(endpoint);
  if (!bytes) {
    bytes = plainEndpoint(endpoint) ? writeEndpoint(endpoint) : toBinary(LbEndpointSchema, endpoint);
    endpointBytes.set(endpoint, bytes);
  }
  return bytes;
}

/**
 * LbEndpoint { 1 endpoint { 1 address { 1 socket_address { 1 protocol, 2 address, 3 port_value } } },
 * 2 health_status, 4 load_balancing_weight (a UInt32Value) }, sized first and
 * written into one buffer: it runs once per instance of the mesh.
 */
function writeEndpoint(endpoint: LbEndpoint): Uint8Array {
  const host = endpoint.hostIdentifier.value as Endpoint;
  const socket = host.address?.address.value as SocketAddress | undefined;
  const port = socket?.portSpecifier.case === "portValue" ? socket.portSpecifier.value : null;
  const addressBytes = socket && socket.address !== "" ? Buffer.byteLength(socket.address) : 0;
  let socketSize = 0;
  if (socket) {
    if (socket.protocol !== 0) socketSize += 1 + varintSize(socket.protocol);
    if (addressBytes > 0) socketSize += 1 + varintSize(addressBytes) + addressBytes;
    if (port !== null) socketSize += 1 + varintSize(port);
  }
  const addressSize = socket ? 1 + varintSize(socketSize) + socketSize : 0;
  const endpointSize = host.address !== undefined ? 1 + varintSize(addressSize) + addressSize : 0;
  const weight = endpoint.loadBalancingWeight;
  const weightSize = weight === undefined || weight === 0 ? 0 : 1 + varintSize(weight);
  const total =
    1 + varintSize(endpointSize) + endpointSize +
    (endpoint.healthStatus !== 0 ? 1 + varintSize(endpoint.healthStatus) : 0) +
    (weight !== undefined ? 2 + weightSize : 0);
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  out[at++] = 0x0a; // 1 endpoint
  at = putVarint(out, at, endpointSize);
  if (host.address !== undefined) {
    out[at++] = 0x0a; // 1 address
    at = putVarint(out, at, addressSize);
    if (socket) {
      out[at++] = 0x0a; // 1 socket_address
      at = putVarint(out, at, socketSize);
      if (socket.protocol !== 0) {
        out[at++] = 0x08;
        at = putVarint(out, at, socket.protocol);
      }
      if (addressBytes > 0) {
        out[at++] = 0x12;
        at = putVarint(out, at, addressBytes);
        at += out.write(socket.address, at, "utf8");
      }
      if (port !== null) {
        out[at++] = 0x18;
        at = putVarint(out, at, port);
      }
    }
  }
  if (endpoint.healthStatus !== 0) {
    out[at++] = 0x10; // 2 health_status
    at = putVarint(out, at, endpoint.healthStatus);
  }
  if (weight !== undefined) {
    out[at++] = 0x22; // 4 load_balancing_weight
    out[at++] = weightSize;
    if (weightSize > 0) {
      out[at++] = 0x08;
      at = putVarint(out, at, weight);
    }
  }
  if (at !== total) throw new Error(`endpoint encoding wrote ${at} of ${total} bytes`);
  return out;
}

/** Bytes of a non-negative varint below 2^32. */
function varintSize(value: number): number {
  return value < 0x80 ? 1 : value < 0x4000 ? 2 : value < 0x200000 ? 3 : value < 0x10000000 ? 4 : 5;
}

function putVarint(out: Uint8Array, at: number, value: number): number {
  let rest = value >>> 0;
  while (rest > 0x7f) {
    out[at++] = (rest & 0x7f) | 0x80;
    rest >>>= 7;
  }
  out[at++] = rest;
  return at;
}

/** An endpoint by socket address (port number), health and weight: what translation builds. */
function plainEndpoint(endpoint: LbEndpoint): boolean {
  // Negative enum values would be 10-byte varints; the sized writer handles unsigned ones only.
  if (endpoint.hostIdentifier.case !== "endpoint" || endpoint.metadata !== undefined || endpoint.healthStatus < 0 || hasUnknown(endpoint)) return false;
  const host = endpoint.hostIdentifier.value;
  if (host.healthCheckConfig !== undefined || host.hostname !== "" || host.additionalAddresses.length > 0 || hasUnknown(host)) return false;
  if (host.address === undefined) return true;
  if (host.address.address.case !== "socketAddress" || hasUnknown(host.address)) return false;
  const socket = host.address.address.value;
  if (socket.protocol < 0) return false;
  return socket.portSpecifier.case !== "namedPort" && socket.resolverName === "" && !socket.ipv4Compat && !hasUnknown(socket);
}

function hasUnknown(message: { $unknown?: unknown[] }): boolean {
  return message.$unknown !== undefined && message.$unknown.length > 0;
}

/** Only the fields written above are set (no unknown fields either). */
function handled(assignment: ClusterLoadAssignment): boolean {
  if (hasUnknown(assignment)) return false;
  for (const _ in assignment.namedEndpoints) return false;
  for (const group of assignment.endpoints) {
    if (group.metadata !== undefined || group.proximity !== undefined || group.lbConfig.case !== undefined) return false;
    if (hasUnknown(group)) return false;
  }
  return true;
}
