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
