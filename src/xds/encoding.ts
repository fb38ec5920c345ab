import { hash } from "node:crypto";
import type { Message } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import type { ClusterLoadAssignment } from "../gen/envoy/config/endpoint/v3/endpoint_pb.ts";
import { RouteConfigurationSchema, type RouteConfiguration } from "../gen/envoy/config/route/v3/route_pb.ts";
import { VirtualHostSchema, type VirtualHost } from "../gen/envoy/config/route/v3/route_components_pb.ts";
import { SCHEMAS, TYPE_URLS, type ResourceKind } from "../translate/resource-types.ts";
import { composedParts } from "./compose-binary.ts";
import { clusterLoadAssignmentAny } from "./endpoint-binary.ts";
import { joinEncoding } from "./encoding-pool.ts";
import { messageField } from "./message-writer.ts";
import { framedSize, frameHeader, putFrame, putFramed } from "./varint.ts";

/**
 * A resource encoded once: its bytes as a google.protobuf.Any, and a version that
 * is a hash of those bytes. protobuf-es writes fields in a fixed order, so equal
 * content gives equal bytes and equal versions across replicas and restarts.
 */
export interface EncodedResource {
  readonly kind: ResourceKind;
  readonly name: string;
  readonly version: string;
  /** The encoded google.protobuf.Any wrapping the resource. */
  readonly any: Uint8Array;
  /** The encoded resource itself (inside `any`); what Delta's Resource wraps. */
  readonly size: number;
}

/** google.protobuf.Any's type_url field (1) per kind; the value field (2) follows it. */
const ANY_PREFIX = Object.fromEntries(
  Object.entries(TYPE_URLS).map(([kind, url]) => [kind, new BinaryWriter().tag(1, WireType.LengthDelimited).string(url).finish()]),
) as Record<ResourceKind, Uint8Array>;

/** What goes before the value's length in each kind's Any: ANY_PREFIX and the value field's (2) tag. */
const ANY_VALUE_HEAD = Object.fromEntries(
  Object.keys(TYPE_URLS).map((kind): [string, Uint8Array] => [kind, Buffer.concat([ANY_PREFIX[kind as ResourceKind], Uint8Array.of(0x12)])]),
) as Record<ResourceKind, Uint8Array>;

/** A version: 22 base64url characters (132 bits) of the SHA-256 of `data`, in one shot. */
function versionHash(data: string | Uint8Array): string {
  return hash("sha256", data, "base64url").slice(0, 22);
}

/**
 * A resource as the bytes of a google.protobuf.Any. Endpoint assignments are
 * written into the Any by their own sized writer (endpoint-binary.ts), in one
 * buffer. Route configurations are assembled from the once-encoded bytes of
 * their shared virtual hosts (compose-binary.ts) and copied into the Any; other
 * kinds are written into it by the compiled message writer (message-writer.ts).
 * The value equals toBinary's.
 *
 * Every Any comes from a shared slab (encoding-pool.ts): toBinary would return
 * a buffer of its own per resource, and tens of thousands of retained buffers
 * of their own each cost the garbage collector (a full build measured 60 ms
 * slower keeping them).
 */
function anyBinary(kind: ResourceKind, message: Message): Uint8Array {
  if (kind === "endpoint") return clusterLoadAssignmentAny(message as ClusterLoadAssignment, ANY_PREFIX.endpoint);
  if (kind !== "route") return messageField(ANY_VALUE_HEAD[kind], SCHEMAS[kind], message);
  const parts = composedParts(RouteConfigurationSchema, message as RouteConfiguration, "virtualHosts", virtualHostField);
  let size = 0;
  for (const part of parts) size += part.length;
  const prefix = ANY_PREFIX[kind];
  const lengthPrefix = frameHeader(0x12, size); // Any's 2 value
  parts.unshift(prefix, lengthPrefix);
  return joinEncoding(parts, prefix.length + lengthPrefix.length + size);
}

/** A virtual host as a route configuration's virtual_hosts field (`tag`), written once into a buffer the cache keeps. */
function virtualHostField(host: VirtualHost, tag: Uint8Array): Uint8Array {
  return messageField(tag, VirtualHostSchema, host);
}

/** Where the value (the resource's own bytes) starts in an Any: after the type_url field and the value's tag and length. */
function anyValueOffset(any: Uint8Array, kind: ResourceKind): number {
  let at = ANY_PREFIX[kind].length + 1;
  while ((any[at++] as number) & 0x80);
  return at;
}

export function encodeResource(kind: ResourceKind, name: string, message: Message): EncodedResource {
  const any = anyBinary(kind, message);
  const valueAt = anyValueOffset(any, kind);
  return { kind, name, version: versionHash(any.subarray(valueAt)), any, size: any.length - valueAt };
}

const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const BASE64URL_VALUE = new Uint8Array(128);
for (let i = 0; i < BASE64URL.length; i++) BASE64URL_VALUE[BASE64URL.charCodeAt(i)] = i;
/** A set version is 22 characters, as a resource's: summed 5 characters (30 bits, a small integer) at a time. */
const SET_VERSION_LANES = 5;
const LANE_MASK = 0x3fffffff;
const setLanes: VersionLanes = new Array<number>(SET_VERSION_LANES);

/**
 * The version of a set of resources as sent together (SotW version_info, a
 * delta subscription's system version): the lane-wise sum of the resources'
 * versions. A resource's version hashes its bytes, which hold its name, so the
 * sum stands for names and contents; being a sum, it needs no sort and no
 * second hash, equal sets give equal versions across replicas and restarts,
 * and the sums of disjoint subsets add up to the whole set's (VersionLanes).
 */
export function setVersion(resources: Iterable<EncodedResource>): string {
  return lanesVersion(addVersionLanes(setLanes.fill(0), resources));
}

/** A set version before formatting: SET_VERSION_LANES sums, each below 2^30. */
export type VersionLanes = number[];

/** A fresh all-zero VersionLanes (the empty set's). */
export function emptyLanes(): VersionLanes {
  return new Array<number>(SET_VERSION_LANES).fill(0);
}

/** Adds each resource's version to `lanes` (in place) and returns them. */
export function addVersionLanes(lanes: VersionLanes, resources: Iterable<EncodedResource>): VersionLanes {
  for (const resource of resources) {
    const version = resource.version;
    for (let lane = 0, at = 0; lane < SET_VERSION_LANES; lane++) {
      let value = 0;
      for (const end = Math.min(at + 5, version.length); at < end; at++) value = value * 64 + (BASE64URL_VALUE[version.charCodeAt(at) & 0x7f] as number);
      lanes[lane] = ((lanes[lane] as number) + value) & LANE_MASK;
    }
  }
  return lanes;
}

/** Adds `more` (another set's sums) to `lanes` in place, and returns them. */
export function addLanes(lanes: VersionLanes, more: VersionLanes): VersionLanes {
  for (let lane = 0; lane < SET_VERSION_LANES; lane++) lanes[lane] = ((lanes[lane] as number) + (more[lane] as number)) & LANE_MASK;
  return lanes;
}

/** Takes `less` (the sums of a subset of the set) out of `lanes` in place, and returns them. */
export function subtractLanes(lanes: VersionLanes, less: VersionLanes): VersionLanes {
  for (let lane = 0; lane < SET_VERSION_LANES; lane++) lanes[lane] = ((lanes[lane] as number) - (less[lane] as number)) & LANE_MASK;
  return lanes;
}

/** The set version the sums stand for. */
export function lanesVersion(lanes: VersionLanes): string {
  let out = "";
  for (let lane = 0; lane < SET_VERSION_LANES; lane++) {
    const value = lanes[lane] as number;
    const chars = lane === SET_VERSION_LANES - 1 ? 2 : 5;
    for (let shift = 6 * (chars - 1); shift >= 0; shift -= 6) out += BASE64URL[(value >>> shift) & 63];
  }
  return out;
}

/**
 * The nonce-independent part of a DiscoveryResponse (version_info, resources,
 * type_url). Built once per view and subscription; `withNonce` appends the
 * stream's nonce (field 5), so a push to many streams copies bytes only.
 */
export function encodeSotwBody(typeUrl: string, versionInfo: string, resources: Iterable<EncodedResource>): Uint8Array {
  const list = Array.isArray(resources) ? (resources as readonly EncodedResource[]) : [...resources];
  const versionBytes = Buffer.byteLength(versionInfo);
  const typeUrlBytes = Buffer.byteLength(typeUrl);
  let size = framedSize(versionBytes) + framedSize(typeUrlBytes);
  for (const resource of list) size += framedSize(resource.any.length);
  const out = bodyBuffer(size);
  let at = putText(out, 0, 0x0a, versionInfo, versionBytes); // 1 version_info
  for (const resource of list) at = putFramed(out, at, 0x12, resource.any); // 2 resources
  at = putText(out, at, 0x22, typeUrl, typeUrlBytes); // 4 type_url
  return checkedBody(out, at);
}

/**
 * A response body's buffer: its own, as protobuf-es's writer gave it, since a
 * body lives as long as the streams that still owe it (not as long as the
 * cache's encodings, which come from slabs, nor as briefly as a frame). Sized
 * first and written once: the writer copied every resource twice.
 */
function bodyBuffer(size: number): Buffer {
  return Buffer.allocUnsafeSlow(size);
}

/** A length-delimited field holding `text` (`byteLength` bytes of UTF-8), with a one-byte tag. */
function putText(out: Buffer, at: number, tag: number, text: string, byteLength: number): number {
  at = putFrame(out, at, tag, byteLength);
  return at + out.write(text, at, "utf8");
}

function checkedBody(out: Buffer, written: number): Buffer {
  if (written !== out.length) throw new Error(`response body encoding wrote ${written} of ${out.length} bytes`);
  return out;
}

/** `body` followed by a `nonce = 5` field. Nonces are short ASCII (decimal counters). */
export function withNonce(body: Uint8Array, nonce: string): Buffer {
  const out = Buffer.allocUnsafe(withNonceSize(body, nonce));
  writeWithNonce(out, body, nonce);
  return out;
}

/** The size of `withNonce(body, nonce)`. */
export function withNonceSize(body: Uint8Array, nonce: string): number {
  if (nonce.length > 127) throw new Error("nonce too long");
  return body.length + 2 + nonce.length;
}

/** Writes `withNonce(body, nonce)` into `out` (at least withNonceSize bytes long). */
export function writeWithNonce(out: Buffer, body: Uint8Array, nonce: string): void {
  out.set(body, 0);
  out[body.length] = (5 << 3) | WireType.LengthDelimited;
  out[body.length + 1] = nonce.length;
  // A loop, not Buffer#write: for a few characters its encoding dispatch costs more than the copy.
  for (let i = 0, at = body.length + 2; i < nonce.length; i++, at++) out[at] = nonce.charCodeAt(i);
}

/**
 * The nonce-independent part of a DeltaDiscoveryResponse; `withNonce` completes
 * it. Shared by every stream that receives the same delta. Each resource is
 * written in place as a delta `Resource` (version = 1, resource = 2, name = 3).
 */
export function encodeDeltaBody(typeUrl: string, systemVersionInfo: string, resources: readonly EncodedResource[], removed: readonly string[]): Uint8Array {
  const versionBytes = Buffer.byteLength(systemVersionInfo);
  const typeUrlBytes = Buffer.byteLength(typeUrl);
  let size = (systemVersionInfo !== "" ? framedSize(versionBytes) : 0) + framedSize(typeUrlBytes);
  for (const resource of resources) size += framedSize(deltaResourceSize(resource));
  for (const name of removed) size += framedSize(Buffer.byteLength(name));
  const out = bodyBuffer(size);
  let at = systemVersionInfo !== "" ? putText(out, 0, 0x0a, systemVersionInfo, versionBytes) : 0; // 1 system_version_info
  for (const resource of resources) {
    // 2 resources: a Resource. A version is base64url, so ASCII: one byte per character.
    at = putFrame(out, at, 0x12, deltaResourceSize(resource));
    at = putText(out, at, 0x0a, resource.version, resource.version.length); // 1 version
    at = putFramed(out, at, 0x12, resource.any); // 2 resource
    at = putText(out, at, 0x1a, resource.name, Buffer.byteLength(resource.name)); // 3 name
  }
  at = putText(out, at, 0x22, typeUrl, typeUrlBytes); // 4 type_url
  for (const name of removed) at = putText(out, at, 0x32, name, Buffer.byteLength(name)); // 6 removed_resources
  return checkedBody(out, at);
}

/** The size of a resource's delta `Resource` message. */
function deltaResourceSize(resource: EncodedResource): number {
  return framedSize(resource.version.length) + framedSize(resource.any.length) + framedSize(Buffer.byteLength(resource.name));
}
