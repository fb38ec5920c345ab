import { toBinary } from "@bufbuild/protobuf";
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
import { encodingBuffer, joinEncoding } from "./encoding-pool.ts";
import { framedSize, frameHeader, putFramed, putVarint, varintSize } from "./varint.ts";

/**
 * ClusterLoadAssignment encoding for the hot path: endpoint resources are the
 * most numerous and the ones every endpoint change re-encodes. The assignment
 * its locality groups and their endpoints are sized, then written directly
 * into one buffer. Endpoints are written in place each time rather than
 * encoded once and copied: per-endpoint byte arrays, and the weak map to find
 * them, cost more (in allocation and in garbage collection) than writing tens
 * of bytes again. Byte-identical to toBinary; an assignment using a
 * field this writer does not handle is encoded by toBinary instead.
 * test/xds/resource-binary.test.ts pins both, and fails when the protos gain a
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

export function clusterLoadAssignmentBinary(assignment: ClusterLoadAssignment): Uint8Array {
  if (!handled(assignment)) return toBinary(ClusterLoadAssignmentSchema, assignment);
  return writeAssignment(assignment, null);
}

/**
 * The assignment as the value of a google.protobuf.Any: `anyHead` (the Any's
 * type_url field), then the value field (2) holding the assignment's bytes,
 * written in the same buffer rather than encoded and then copied into one.
 */
export function clusterLoadAssignmentAny(assignment: ClusterLoadAssignment, anyHead: Uint8Array): Uint8Array {
  if (!handled(assignment)) {
    const value = toBinary(ClusterLoadAssignmentSchema, assignment);
    const valueHead = frameHeader(0x12, value.length); // Any's 2 value
    return joinEncoding([anyHead, valueHead, value], anyHead.length + valueHead.length + value.length);
  }
  return writeAssignment(assignment, anyHead);
}

/** Sized first, then written into one buffer (after `anyHead` and the value's header, when wrapped in an Any). */
function writeAssignment(assignment: ClusterLoadAssignment, anyHead: Uint8Array | null): Uint8Array {
  // Field-number order, as protobuf-es writes: 1 cluster_name, 2 endpoints, 4 policy (5 named_endpoints is empty).
  const nameBytes = Buffer.byteLength(assignment.clusterName);
  const policy = assignment.policy !== undefined ? binaryOnce(ClusterLoadAssignment_PolicySchema, assignment.policy) : null;
  const groups = assignment.endpoints;
  const groupSizes = new Array<number>(groups.length);
  // Each endpoint's size (or, for one this writer does not handle, its toBinary bytes), for both passes.
  const endpoints: (number | Uint8Array)[] = [];
  let total = nameBytes > 0 ? 1 + varintSize(nameBytes) + nameBytes : 0;
  for (let g = 0; g < groups.length; g++) {
    const size = groupSize(groups[g] as LocalityLbEndpoints, endpoints);
    groupSizes[g] = size;
    total += 1 + varintSize(size) + size;
  }
  if (policy !== null) total += 1 + varintSize(policy.length) + policy.length;
  const headSize = anyHead === null ? 0 : anyHead.length + 1 + varintSize(total);
  const out = encodingBuffer(headSize + total);
  let at = 0;
  if (anyHead !== null) {
    out.set(anyHead, 0);
    at = anyHead.length;
    out[at++] = 0x12; // Any's 2 value
    at = putVarint(out, at, total);
  }
  if (nameBytes > 0) {
    out[at++] = 0x0a; // 1 cluster_name
    at = putVarint(out, at, nameBytes);
    at += out.write(assignment.clusterName, at, "utf8");
  }
  let next = 0;
  for (let g = 0; g < groups.length; g++) {
    const group = groups[g] as LocalityLbEndpoints;
    out[at++] = 0x12; // 2 endpoints
    at = putVarint(out, at, groupSizes[g] as number);
    at = writeGroup(out, at, group, endpoints, next);
    next += group.lbEndpoints.length;
  }
  if (policy !== null) {
    out[at++] = 0x22; // 4 policy
    at = putVarint(out, at, policy.length);
    out.set(policy, at);
    at += policy.length;
  }
  if (at !== headSize + total) throw new Error(`assignment encoding wrote ${at - headSize} of ${total} bytes`);
  return out;
}

/** LocalityLbEndpoints: 1 locality, 2 lb_endpoints, 3 load_balancing_weight (a UInt32Value), 5 priority. */
function groupSize(group: LocalityLbEndpoints, endpoints: (number | Uint8Array)[]): number {
  let size = 0;
  if (group.locality !== undefined) size += framedSize(binaryOnce(LocalitySchema, group.locality).length);
  for (const endpoint of group.lbEndpoints) {
    const sized = plainEndpoint(endpoint) ? endpointSize(endpoint) : toBinary(LbEndpointSchema, endpoint);
    endpoints.push(sized);
    size += framedSize(typeof sized === "number" ? sized : sized.length);
  }
  if (group.loadBalancingWeight !== undefined) size += framedSize(weightSize(group.loadBalancingWeight));
  if (group.priority !== 0) size += 1 + varintSize(group.priority);
  return size;
}

/** The group, its endpoints' sizes being endpoints[first …] (as groupSize collected them). */
function writeGroup(out: Buffer, start: number, group: LocalityLbEndpoints, endpoints: readonly (number | Uint8Array)[], first: number): number {
  let at = start;
  if (group.locality !== undefined) at = putFramed(out, at, 0x0a, binaryOnce(LocalitySchema, group.locality)); // 1 locality
  const lbEndpoints = group.lbEndpoints;
  for (let e = 0; e < lbEndpoints.length; e++) {
    const sized = endpoints[first + e] as number | Uint8Array;
    if (typeof sized !== "number") {
      at = putFramed(out, at, 0x12, sized); // 2 lb_endpoints
      continue;
    }
    out[at++] = 0x12; // 2 lb_endpoints
    at = putVarint(out, at, sized);
    // A size that disagrees with what is written fails the assignment's total check.
    at = putEndpoint(out, at, lbEndpoints[e] as LbEndpoint);
  }
  if (group.loadBalancingWeight !== undefined) {
    // A wrapper message whose value field is left out when zero, like any proto3 scalar.
    const weight = group.loadBalancingWeight;
    out[at++] = 0x1a; // 3 load_balancing_weight
    at = putVarint(out, at, weightSize(weight));
    if (weight !== 0) {
      out[at++] = 0x08;
      at = putVarint(out, at, weight);
    }
  }
  if (group.priority !== 0) {
    out[at++] = 0x28; // 5 priority
    at = putVarint(out, at, group.priority);
  }
  return at;
}

/** A UInt32Value's size: its value field, left out when zero. */
function weightSize(weight: number): number {
  return weight === 0 ? 0 : 1 + varintSize(weight);
}

/*
 * LbEndpoint { 1 endpoint { 1 address { 1 socket_address { 1 protocol, 2 address, 3 port_value } } },
 * 2 health_status, 4 load_balancing_weight (a UInt32Value) }, for an endpoint
 * plainEndpoint accepts: sized by endpointSize, written by putEndpoint.
 */

function socketOf(endpoint: LbEndpoint): SocketAddress | undefined {
  return (endpoint.hostIdentifier.value as Endpoint).address?.address.value as SocketAddress | undefined;
}

/** The address's UTF-8 length; it equals the string's length exactly when the address is ASCII. */
function addressLength(socket: SocketAddress): number {
  return isAscii(socket.address) ? socket.address.length : Buffer.byteLength(socket.address);
}

/** SocketAddress's fields (protocol, address, port_value). */
function socketSize(socket: SocketAddress, addressBytes: number): number {
  let size = 0;
  if (socket.protocol !== 0) size += 1 + varintSize(socket.protocol);
  if (addressBytes > 0) size += 1 + varintSize(addressBytes) + addressBytes;
  if (socket.portSpecifier.case === "portValue") size += 1 + varintSize(socket.portSpecifier.value);
  return size;
}

/** Endpoint's fields: its address (an Address holding the socket address), if any. */
function hostSize(endpoint: LbEndpoint, socket: SocketAddress | undefined, addressBytes: number): number {
  if ((endpoint.hostIdentifier.value as Endpoint).address === undefined) return 0;
  const addressSize = socket ? framedSize(socketSize(socket, addressBytes)) : 0;
  return framedSize(addressSize);
}

function endpointSize(endpoint: LbEndpoint): number {
  const socket = socketOf(endpoint);
  const weight = endpoint.loadBalancingWeight;
  return (
    framedSize(hostSize(endpoint, socket, socket ? addressLength(socket) : 0)) +
    (endpoint.healthStatus !== 0 ? 1 + varintSize(endpoint.healthStatus) : 0) +
    (weight !== undefined ? 2 + weightSize(weight) : 0)
  );
}

function putEndpoint(out: Uint8Array, start: number, endpoint: LbEndpoint): number {
  const socket = socketOf(endpoint);
  const addressBytes = socket ? addressLength(socket) : 0;
  let at = start;
  out[at++] = 0x0a; // 1 endpoint
  at = putVarint(out, at, hostSize(endpoint, socket, addressBytes));
  if ((endpoint.hostIdentifier.value as Endpoint).address !== undefined) {
    const fields = socket ? socketSize(socket, addressBytes) : 0;
    out[at++] = 0x0a; // 1 address
    at = putVarint(out, at, socket ? framedSize(fields) : 0);
    if (socket) {
      out[at++] = 0x0a; // 1 socket_address
      at = putVarint(out, at, fields);
      if (socket.protocol !== 0) {
        out[at++] = 0x08;
        at = putVarint(out, at, socket.protocol);
      }
      if (addressBytes > 0) {
        out[at++] = 0x12;
        at = putVarint(out, at, addressBytes);
        at = addressBytes === socket.address.length ? putAscii(out, at, socket.address) : putUtf8(out, at, socket.address);
      }
      if (socket.portSpecifier.case === "portValue") {
        out[at++] = 0x18;
        at = putVarint(out, at, socket.portSpecifier.value);
      }
    }
  }
  if (endpoint.healthStatus !== 0) {
    out[at++] = 0x10; // 2 health_status
    at = putVarint(out, at, endpoint.healthStatus);
  }
  const weight = endpoint.loadBalancingWeight;
  if (weight !== undefined) {
    out[at++] = 0x22; // 4 load_balancing_weight
    out[at++] = weightSize(weight);
    if (weight !== 0) {
      out[at++] = 0x08;
      at = putVarint(out, at, weight);
    }
  }
  return at;
}

/** An IP address or host name is ASCII: then its bytes are its char codes. */
function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}

function putAscii(out: Uint8Array, start: number, text: string): number {
  for (let i = 0; i < text.length; i++) out[start + i] = text.charCodeAt(i);
  return start + text.length;
}

function putUtf8(out: Uint8Array, start: number, text: string): number {
  const bytes = Buffer.from(text, "utf8");
  out.set(bytes, start);
  return start + bytes.length;
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
