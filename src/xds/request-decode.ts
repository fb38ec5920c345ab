import { fromBinary } from "@bufbuild/protobuf";
import { BinaryReader, getTextEncoding, WireType } from "@bufbuild/protobuf/wire";
import { NodeSchema, type Node } from "../gen/envoy/config/core/v3/base_pb.ts";
import { RESOURCE_KINDS, TYPE_URLS } from "../translate/resource-types.ts";

/**
 * Decoding discovery requests without building whole protobuf-es messages.
 * Nearly every request on a busy server is an ACK, and a reflective decode of
 * one (with its list of resource names, and a Node that Envoy repeats in every
 * request unless told otherwise) costs more than everything else the server
 * does for it. This reads just the fields the streams use and skips everything
 * else:
 *
 *  - the type URL and the nonce come back as shared strings when they are ours
 *    (one of the four type URLs; a small decimal nonce, see `nonceString`), so
 *    an ACK decodes no text at all;
 *  - a state-of-the-world request's version_info and resource_names are decoded
 *    only when read; the stream compares the names' wire bytes with the previous
 *    request's (`resourceNamesBytes`) and the version with what it sent
 *    (`hasVersion`), so an ACK of an unchanged subscription decodes neither;
 *  - the Node is decoded only when asked (once per stream).
 *
 * A hand-written scan (`nextField`) reads the common shapes (single-byte tags, varint and
 * length-delimited fields); anything else (groups, fixed-width fields, long
 * tags, malformed input) is decoded again by protobuf-es's own wire reader,
 * which throws on malformed input (truncated, bad wire type, bad lengths) like
 * fromBinary.
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
  /**
   * The resource_names fields exactly as they arrived, when they were adjacent
   * on the wire: equal bytes mean an equal list (same names, same order).
   * Absent for requests not decoded from the wire.
   */
  readonly resourceNamesBytes?: Uint8Array | undefined;
  /** Whether versionInfo equals `version`, without decoding it. */
  hasVersion?(version: string): boolean;
}

/** The fields of a DeltaDiscoveryRequest a delta stream uses. */
export interface DeltaRequest {
  readonly typeUrl: string;
  readonly resourceNamesSubscribe: readonly string[];
  /**
   * The resource_names_subscribe fields exactly as they arrived, when they
   * were adjacent on the wire (empty when there are none): equal bytes mean an
   * equal list, so a stream can reuse what another stream's identical first
   * request was decoded to without decoding it. Absent for requests not
   * decoded from the wire.
   */
  readonly resourceNamesSubscribeBytes?: Uint8Array | undefined;
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

// --- shared strings --------------------------------------------------------------

/** Nonces below this are shared strings. */
const NONCE_CACHE_SIZE = 1 << 16;
const nonceStrings: string[] = [];

/**
 * The decimal nonce `n` as a string, shared for small `n`: streams number their
 * responses from 1, so sending a nonce and matching it in the ACK allocate nothing.
 */
export function nonceString(n: number): string {
  if (n >= NONCE_CACHE_SIZE) return String(n);
  return (nonceStrings[n] ??= String(n));
}

const KNOWN_TYPE_URLS: ReadonlyArray<{ readonly bytes: Uint8Array; readonly url: string }> = RESOURCE_KINDS.map((kind) => ({
  bytes: new TextEncoder().encode(TYPE_URLS[kind]),
  url: TYPE_URLS[kind],
}));

const EMPTY_NAMES: readonly string[] = Object.freeze([]);
const EMPTY_VERSIONS: Readonly<Record<string, string>> = Object.freeze(Object.create(null) as Record<string, string>);
const EMPTY_BYTES = new Uint8Array(0);

const { decodeUtf8 } = getTextEncoding();

/** UTF-8 text of buf[start, end), with an ASCII fast path. */
function text(buf: Uint8Array, start: number, end: number): string {
  if (end - start <= 64) {
    let ascii = true;
    for (let i = start; i < end; i++) {
      if ((buf[i] as number) > 0x7f) {
        ascii = false;
        break;
      }
    }
    if (ascii) return String.fromCharCode.apply(null, buf.subarray(start, end) as unknown as number[]);
  }
  return decodeUtf8(buf.subarray(start, end));
}

function sameBytes(buf: Uint8Array, start: number, end: number, other: Uint8Array): boolean {
  if (end - start !== other.length) return false;
  for (let i = 0; i < other.length; i++) if (buf[start + i] !== other[i]) return false;
  return true;
}

/** The type URL, shared when it is one of ours. */
function typeUrlAt(buf: Uint8Array, start: number, end: number): string {
  for (const known of KNOWN_TYPE_URLS) if (sameBytes(buf, start, end, known.bytes)) return known.url;
  return text(buf, start, end);
}

/** The nonce, shared when it is a small decimal number without leading zeros (ours). */
function nonceAt(buf: Uint8Array, start: number, end: number): string {
  const length = end - start;
  if (length === 0) return "";
  if (length <= 5 && buf[start] !== 0x30) {
    let n = 0;
    for (let i = start; i < end; i++) {
      const digit = (buf[i] as number) - 0x30;
      if (digit < 0 || digit > 9) return text(buf, start, end);
      n = n * 10 + digit;
    }
    if (n < NONCE_CACHE_SIZE) return nonceString(n);
  }
  return text(buf, start, end);
}

// --- the fast scan ---------------------------------------------------------------

/** The scan met something it leaves to protobuf-es's reader. */
class Unusual extends Error {}
const UNUSUAL = new Unusual();

/** The field `nextField` read last: its number, where its tag starts, its payload [start, end). */
let fieldNumber = 0;
let fieldAt = 0;
let fieldStart = 0;
let fieldEnd = 0;

/**
 * Reads the next length-delimited field of buf[pos, limit) into the variables
 * above and returns the position after it, or -1 at `limit`. Varint fields
 * numbered above `known` are skipped. Throws UNUSUAL for anything else (a
 * varint where a known field is, another wire type, a multi-byte tag, a length
 * past the end): protobuf-es's reader then decides. No allocation.
 */
function nextField(buf: Uint8Array, pos: number, limit: number, known: number): number {
  while (pos < limit) {
    const at = pos;
    const tag = buf[pos++] as number;
    if (tag >= 0x80 || tag < 8) throw UNUSUAL;
    const wireType = tag & 7;
    if (wireType === WireType.Varint) {
      if (tag >> 3 <= known) throw UNUSUAL;
      for (let n = 0; ; n++) {
        if (pos >= limit || n >= 10) throw UNUSUAL;
        if ((buf[pos++] as number) < 0x80) break;
      }
      continue;
    }
    if (wireType !== WireType.LengthDelimited) throw UNUSUAL;
    let length = 0;
    for (let shift = 0; ; shift += 7) {
      if (pos >= limit || shift > 21) throw UNUSUAL;
      const byte = buf[pos++] as number;
      length |= (byte & 0x7f) << shift;
      if (byte < 0x80) break;
    }
    const end = pos + length;
    if (end > limit) throw UNUSUAL;
    fieldNumber = tag >> 3;
    fieldAt = at;
    fieldStart = pos;
    fieldEnd = end;
    return end;
  }
  return -1;
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

// --- state of the world ---------------------------------------------------------------

/** What both kinds of scanned request share: their bytes, and the node decoded on demand. */
abstract class ScannedRequest {
  typeUrl = "";
  responseNonce = "";
  errorDetail: ErrorDetail | undefined = undefined;
  nodeStart = -1;
  nodeEnd = -1;

  constructor(readonly bytes: Uint8Array) {}

  node(): Node | undefined {
    return this.nodeStart < 0 ? undefined : fromBinary(NodeSchema, this.bytes.subarray(this.nodeStart, this.nodeEnd));
  }
}

/** A DiscoveryRequest read by the fast scan; version and names are decoded on first use. */
class ScannedSotwRequest extends ScannedRequest implements SotwRequest, Decoded<SotwRequest> {
  resourceNamesBytes: Uint8Array | undefined = EMPTY_BYTES;
  versionStart = 0;
  versionEnd = 0;
  namesStart = -1;
  namesEnd = -1;
  private version: string | null = null;
  private names: readonly string[] | null = null;

  get request(): SotwRequest {
    return this;
  }

  get versionInfo(): string {
    return (this.version ??= text(this.bytes, this.versionStart, this.versionEnd));
  }

  hasVersion(version: string): boolean {
    if (this.version !== null) return this.version === version;
    const start = this.versionStart;
    if (this.versionEnd - start !== version.length) return this.versionInfo === version;
    for (let i = 0; i < version.length; i++) {
      const code = version.charCodeAt(i);
      if (code > 0x7f) return this.versionInfo === version;
      if (this.bytes[start + i] !== code) return false;
    }
    return true;
  }

  get resourceNames(): readonly string[] {
    if (this.names === null) {
      const names: string[] = [];
      const bytes = this.bytes;
      for (let pos = 0; (pos = nextField(bytes, pos, bytes.length, 6)) >= 0; ) {
        if (fieldNumber === 3) names.push(text(bytes, fieldStart, fieldEnd));
      }
      this.names = names;
    }
    return this.names;
  }
}

function scanDiscoveryRequest(bytes: Uint8Array): ScannedSotwRequest {
  const request = new ScannedSotwRequest(bytes);
  let namesAdjacent = true;
  for (let pos = 0; (pos = nextField(bytes, pos, bytes.length, 6)) >= 0; ) {
    const start = fieldStart;
    const end = fieldEnd;
    switch (fieldNumber) {
      case 1:
        request.versionStart = start;
        request.versionEnd = end;
        break;
      case 2:
        request.nodeStart = start;
        request.nodeEnd = end;
        break;
      case 3:
        if (request.namesStart < 0) request.namesStart = fieldAt;
        else if (request.namesEnd !== fieldAt) namesAdjacent = false;
        request.namesEnd = end;
        break;
      case 4:
        request.typeUrl = typeUrlAt(bytes, start, end);
        break;
      case 5:
        request.responseNonce = nonceAt(bytes, start, end);
        break;
      case 6:
        request.errorDetail = errorDetail(bytes.subarray(start, end));
        break;
    }
  }
  if (request.namesStart >= 0) request.resourceNamesBytes = namesAdjacent ? bytes.subarray(request.namesStart, request.namesEnd) : undefined;
  return request;
}

/** protobuf-es's reader: every shape the fast scan leaves, and the errors for malformed input. */
function readDiscoveryRequest(bytes: Uint8Array): Decoded<SotwRequest> {
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

export function decodeDiscoveryRequest(bytes: Uint8Array): Decoded<SotwRequest> {
  try {
    return scanDiscoveryRequest(bytes);
  } catch (error) {
    if (!(error instanceof Unusual)) throw error;
    return readDiscoveryRequest(bytes);
  }
}

// --- delta ------------------------------------------------------------------------------

class ScannedDeltaRequest extends ScannedRequest implements DeltaRequest, Decoded<DeltaRequest> {
  resourceNamesSubscribeBytes: Uint8Array | undefined = EMPTY_BYTES;
  resourceNamesUnsubscribe: readonly string[] = EMPTY_NAMES;
  initialResourceVersions: Readonly<Record<string, string>> = EMPTY_VERSIONS;
  subscribeStart = -1;
  subscribeEnd = -1;
  private subscribe: readonly string[] | null = null;

  get request(): DeltaRequest {
    return this;
  }

  /** Decoded on first use: a first request can list every cluster of the mesh, and a stream that finds its bytes known never reads them. */
  get resourceNamesSubscribe(): readonly string[] {
    if (this.subscribe === null) {
      let names: string[] | null = null;
      const bytes = this.bytes;
      for (let pos = 0; (pos = nextField(bytes, pos, bytes.length, 7)) >= 0; ) {
        if (fieldNumber === 3) (names ??= []).push(text(bytes, fieldStart, fieldEnd));
      }
      this.subscribe = names ?? EMPTY_NAMES;
    }
    return this.subscribe;
  }
}

function scanDeltaDiscoveryRequest(bytes: Uint8Array): ScannedDeltaRequest {
  const request = new ScannedDeltaRequest(bytes);
  let subscribeAdjacent = true;
  let unsubscribe: string[] | null = null;
  let initial: Record<string, string> | null = null;
  for (let pos = 0; (pos = nextField(bytes, pos, bytes.length, 7)) >= 0; ) {
    const start = fieldStart;
    const end = fieldEnd;
    switch (fieldNumber) {
      case 1:
        request.nodeStart = start;
        request.nodeEnd = end;
        break;
      case 2:
        request.typeUrl = typeUrlAt(bytes, start, end);
        break;
      case 3:
        if (request.subscribeStart < 0) request.subscribeStart = fieldAt;
        else if (request.subscribeEnd !== fieldAt) subscribeAdjacent = false;
        request.subscribeEnd = end;
        break;
      case 4:
        (unsubscribe ??= []).push(text(bytes, start, end));
        break;
      case 5: {
        let key = "";
        let value = "";
        for (let at = start; (at = nextField(bytes, at, end, 2)) >= 0; ) {
          const entryField = fieldNumber as number; // set again by nextField
          if (entryField === 1) key = text(bytes, fieldStart, fieldEnd);
          else if (entryField === 2) value = text(bytes, fieldStart, fieldEnd);
        }
        (initial ??= Object.create(null) as Record<string, string>)[key] = value;
        break;
      }
      case 6:
        request.responseNonce = nonceAt(bytes, start, end);
        break;
      case 7:
        request.errorDetail = errorDetail(bytes.subarray(start, end));
        break;
    }
  }
  if (request.subscribeStart >= 0) request.resourceNamesSubscribeBytes = subscribeAdjacent ? bytes.subarray(request.subscribeStart, request.subscribeEnd) : undefined;
  if (unsubscribe) request.resourceNamesUnsubscribe = unsubscribe;
  if (initial) request.initialResourceVersions = initial;
  return request;
}

function readDeltaDiscoveryRequest(bytes: Uint8Array): Decoded<DeltaRequest> {
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

export function decodeDeltaDiscoveryRequest(bytes: Uint8Array): Decoded<DeltaRequest> {
  try {
    return scanDeltaDiscoveryRequest(bytes);
  } catch (error) {
    if (!(error instanceof Unusual)) throw error;
    return readDeltaDiscoveryRequest(bytes);
  }
}
