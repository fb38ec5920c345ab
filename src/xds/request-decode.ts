import { fromBinary } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { NodeSchema, type Node } from "../gen/envoy/config/core/v3/base_pb.ts";

/**
 * Decoding discovery requests without building whole protobuf-es messages.
 * Nearly every request on a busy server is an ACK, and a reflective decode of
 * one (with its list of resource names, and a Node that Envoy repeats in every
 * request unless told otherwise) costs more than everything else the server
 * does for it. This reads just the fields the streams use, decodes the Node
 * only when asked (once per stream), and skips everything else, using
 * protobuf-es's own wire reader. Malformed input (truncated, bad wire type, bad
 * lengths) throws, like fromBinary.
 */

export interface ErrorDetail {
  readonly code: number;
  readonly message: string;
}

/** The fields of a DiscoveryRequest a state-of-the-world stream uses. */
export interface SotwRequest {
  readonly versionInfo: string;
  readonly resourceNames: readonly string[];
  readonly typeUrl: string;
  readonly responseNonce: string;
  readonly errorDetail?: ErrorDetail | undefined;
}

/** The fields of a DeltaDiscoveryRequest a delta stream uses. */
export interface DeltaRequest {
  readonly typeUrl: string;
  readonly resourceNamesSubscribe: readonly string[];
  readonly resourceNamesUnsubscribe: readonly string[];
  readonly initialResourceVersions: Readonly<Record<string, string>>;
  readonly responseNonce: string;
  readonly errorDetail?: ErrorDetail | undefined;
}

export interface Decoded<Request> {
  readonly request: Request;
  /** The node, decoded on demand; undefined when the request carries none. */
  node(): Node | undefined;
}

function expectLength(field: number, wireType: WireType): void {
  if (wireType !== WireType.LengthDelimited) throw new Error(`field ${field}: expected length-delimited, got wire type ${wireType}`);
}

function errorDetail(bytes: Uint8Array): ErrorDetail {
  const reader = new BinaryReader(bytes);
  let code = 0;
  let message = "";
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.Varint) code = reader.int32();
    else if (field === 2 && wireType === WireType.LengthDelimited) message = reader.string();
    else reader.skip(wireType, field);
  }
  return { code, message };
}

function lazyNode(bytes: Uint8Array | null): () => Node | undefined {
  return () => (bytes ? fromBinary(NodeSchema, bytes) : undefined);
}

export function decodeDiscoveryRequest(bytes: Uint8Array): Decoded<SotwRequest> {
  const reader = new BinaryReader(bytes);
  let versionInfo = "";
  let typeUrl = "";
  let responseNonce = "";
  const resourceNames: string[] = [];
  let detail: ErrorDetail | undefined;
  let node: Uint8Array | null = null;
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    switch (field) {
      case 1:
        expectLength(field, wireType);
        versionInfo = reader.string();
        break;
      case 2:
        expectLength(field, wireType);
        node = reader.bytes();
        break;
      case 3:
        expectLength(field, wireType);
        resourceNames.push(reader.string());
        break;
      case 4:
        expectLength(field, wireType);
        typeUrl = reader.string();
        break;
      case 5:
        expectLength(field, wireType);
        responseNonce = reader.string();
        break;
      case 6: {
        expectLength(field, wireType);
        detail = errorDetail(reader.bytes());
        break;
      }
      default:
        reader.skip(wireType, field);
    }
  }
  return { request: { versionInfo, resourceNames, typeUrl, responseNonce, errorDetail: detail }, node: lazyNode(node) };
}

export function decodeDeltaDiscoveryRequest(bytes: Uint8Array): Decoded<DeltaRequest> {
  const reader = new BinaryReader(bytes);
  let typeUrl = "";
  let responseNonce = "";
  const subscribe: string[] = [];
  const unsubscribe: string[] = [];
  const initial: Record<string, string> = Object.create(null) as Record<string, string>;
  let detail: ErrorDetail | undefined;
  let node: Uint8Array | null = null;
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    switch (field) {
      case 1:
        expectLength(field, wireType);
        node = reader.bytes();
        break;
      case 2:
        expectLength(field, wireType);
        typeUrl = reader.string();
        break;
      case 3:
        expectLength(field, wireType);
        subscribe.push(reader.string());
        break;
      case 4:
        expectLength(field, wireType);
        unsubscribe.push(reader.string());
        break;
      case 5: {
        expectLength(field, wireType);
        const entry = new BinaryReader(reader.bytes());
        let key = "";
        let value = "";
        while (entry.pos < entry.len) {
          const [f, w] = entry.tag();
          if (f === 1 && w === WireType.LengthDelimited) key = entry.string();
          else if (f === 2 && w === WireType.LengthDelimited) value = entry.string();
          else entry.skip(w, f);
        }
        initial[key] = value;
        break;
      }
      case 6:
        expectLength(field, wireType);
        responseNonce = reader.string();
        break;
      case 7: {
        expectLength(field, wireType);
        detail = errorDetail(reader.bytes());
        break;
      }
      default:
        reader.skip(wireType, field);
    }
  }
  return {
    request: { typeUrl, resourceNamesSubscribe: subscribe, resourceNamesUnsubscribe: unsubscribe, initialResourceVersions: initial, responseNonce, errorDetail: detail },
    node: lazyNode(node),
  };
}
