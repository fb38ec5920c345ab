import { createHash } from "node:crypto";
import { toBinary, type Message } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { SCHEMAS, TYPE_URLS, type ResourceKind } from "../translate/resource-types.ts";

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

export function contentHash(parts: Iterable<string | Uint8Array>): string {
  const hash = createHash("sha256");
  for (const part of parts) hash.update(part);
  return hash.digest("base64url").slice(0, 22);
}

export function encodeResource(kind: ResourceKind, name: string, message: Message): EncodedResource {
  const value = toBinary(SCHEMAS[kind], message);
  const any = new BinaryWriter()
    .tag(1, WireType.LengthDelimited)
    .string(TYPE_URLS[kind])
    .tag(2, WireType.LengthDelimited)
    .bytes(value)
    .finish();
  return { kind, name, version: contentHash([value]), any, size: value.length };
}

/** The version of a set of resources as sent together (SotW version_info). */
export function setVersion(resources: Iterable<EncodedResource>): string {
  const parts: string[] = [];
  for (const resource of resources) parts.push(`${resource.name}\u0000${resource.version}\u0000`);
  parts.sort();
  return contentHash(parts);
}

/**
 * A DiscoveryResponse written from already-encoded resources: the resources are
 * copied in as bytes, never re-encoded per stream.
 */
export function encodeDiscoveryResponse(
  typeUrl: string,
  versionInfo: string,
  nonce: string,
  resources: Iterable<EncodedResource>,
): Uint8Array {
  const writer = new BinaryWriter();
  writer.tag(1, WireType.LengthDelimited).string(versionInfo);
  for (const resource of resources) writer.tag(2, WireType.LengthDelimited).bytes(resource.any);
  writer.tag(4, WireType.LengthDelimited).string(typeUrl);
  writer.tag(5, WireType.LengthDelimited).string(nonce);
  return writer.finish();
}

/**
 * The nonce-independent part of a DiscoveryResponse (version_info, resources,
 * type_url). Built once per view and subscription; `withNonce` appends the
 * stream's nonce (field 5), so a push to many streams copies bytes only.
 */
export function encodeSotwBody(typeUrl: string, versionInfo: string, resources: Iterable<EncodedResource>): Uint8Array {
  const writer = new BinaryWriter();
  writer.tag(1, WireType.LengthDelimited).string(versionInfo);
  for (const resource of resources) writer.tag(2, WireType.LengthDelimited).bytes(resource.any);
  writer.tag(4, WireType.LengthDelimited).string(typeUrl);
  return writer.finish();
}

/** `body` followed by a `nonce = 5` field. Nonces are short ASCII (decimal counters). */
export function withNonce(body: Uint8Array, nonce: string): Uint8Array {
  if (nonce.length > 127) throw new Error("nonce too long");
  const out = Buffer.allocUnsafe(body.length + 2 + nonce.length);
  out.set(body, 0);
  out[body.length] = (5 << 3) | WireType.LengthDelimited;
  out[body.length + 1] = nonce.length;
  out.write(nonce, body.length + 2, "latin1");
  return out;
}

const deltaResources = new WeakMap<EncodedResource, Uint8Array>();

/**
 * The delta `Resource` message (version = 1, resource = 2, name = 3) for an
 * encoded resource, built on first use and then shared by every stream.
 */
export function deltaResourceBytes(resource: EncodedResource): Uint8Array {
  let bytes = deltaResources.get(resource);
  if (!bytes) {
    bytes = new BinaryWriter()
      .tag(1, WireType.LengthDelimited)
      .string(resource.version)
      .tag(2, WireType.LengthDelimited)
      .bytes(resource.any)
      .tag(3, WireType.LengthDelimited)
      .string(resource.name)
      .finish();
    deltaResources.set(resource, bytes);
  }
  return bytes;
}

/**
 * The nonce-independent part of a DeltaDiscoveryResponse; `withNonce` completes
 * it. Shared by every stream that receives the same delta.
 */
export function encodeDeltaBody(typeUrl: string, systemVersionInfo: string, resources: Iterable<EncodedResource>, removed: Iterable<string>): Uint8Array {
  const writer = new BinaryWriter();
  if (systemVersionInfo !== "") writer.tag(1, WireType.LengthDelimited).string(systemVersionInfo);
  for (const resource of resources) writer.tag(2, WireType.LengthDelimited).bytes(deltaResourceBytes(resource));
  writer.tag(4, WireType.LengthDelimited).string(typeUrl);
  for (const name of removed) writer.tag(6, WireType.LengthDelimited).string(name);
  return writer.finish();
}

/** A DeltaDiscoveryResponse assembled from pre-encoded `Resource` messages. */
export function encodeDeltaResponse(
  typeUrl: string,
  systemVersionInfo: string,
  nonce: string,
  resources: Iterable<EncodedResource>,
  removed: Iterable<string>,
): Uint8Array {
  const writer = new BinaryWriter();
  if (systemVersionInfo !== "") writer.tag(1, WireType.LengthDelimited).string(systemVersionInfo);
  for (const resource of resources) writer.tag(2, WireType.LengthDelimited).bytes(deltaResourceBytes(resource));
  writer.tag(4, WireType.LengthDelimited).string(typeUrl);
  writer.tag(5, WireType.LengthDelimited).string(nonce);
  for (const name of removed) writer.tag(6, WireType.LengthDelimited).string(name);
  return writer.finish();
}
