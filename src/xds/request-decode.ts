import { fromBinary } from "@bufbuild/protobuf";
import { NodeSchema, type Node } from "../gen/envoy/config/core/v3/base_pb.ts";

/**
 * Decoding discovery requests without building whole protobuf-es messages.
 * Nearly every request on a busy server is an ACK, and a reflective decode of
 * one (with its list of resource names, and a Node that Envoy repeats in every
 * request unless told otherwise) costs more than everything else the server
 * does for it. This reads just the fields the streams use, decodes the Node
 * only when asked (once per stream), and skips everything else. Malformed input
 * (truncated, bad wire type, bad lengths) throws, like fromBinary.
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

class Reader {
  pos: number;

  constructor(
    readonly buf: Buffer,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  varint(): number {
    let value = 0;
    let shift = 0;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new Error("premature end of input");
      const byte = this.buf[this.pos++] as number;
      if (shift < 53) value += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return value;
      shift += 7;
    }
    throw new Error("invalid varint");
  }

  /** Returns [start, end) of a length-delimited payload. */
  bytes(): [number, number] {
    const length = this.varint();
    const start = this.pos;
    if (length > this.end - start) throw new Error("premature end of input");
    this.pos = start + length;
    return [start, this.pos];
  }

  string(): string {
    const [start, end] = this.bytes();
    return this.buf.toString("utf8", start, end);
  }

  skip(wireType: number): void {
    switch (wireType) {
      case 0:
        this.varint();
        return;
      case 1:
        this.advance(8);
        return;
      case 2:
        this.bytes();
        return;
      case 5:
        this.advance(4);
        return;
      default:
        throw new Error(`cannot skip wire type ${wireType}`);
    }
  }

  private advance(count: number): void {
    if (count > this.end - this.pos) throw new Error("premature end of input");
    this.pos += count;
  }

  /** Next tag as [field, wireType]; validates the wire type. */
  tag(): [number, number] {
    const tag = this.varint();
    const field = Math.floor(tag / 8);
    const wireType = tag % 8;
    if (field < 1 || wireType === 3 || wireType === 4 || wireType > 5) throw new Error(`invalid tag (field ${field}, wire type ${wireType})`);
    return [field, wireType];
  }
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function expectLength(field: number, wireType: number): void {
  if (wireType !== 2) throw new Error(`field ${field}: expected length-delimited, got wire type ${wireType}`);
}

function errorDetail(buf: Buffer, start: number, end: number): ErrorDetail {
  const reader = new Reader(buf, start, end);
  let code = 0;
  let message = "";
  while (!reader.done) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === 0) code = reader.varint() | 0;
    else if (field === 2 && wireType === 2) message = reader.string();
    else reader.skip(wireType);
  }
  return { code, message };
}

function lazyNode(buf: Buffer, span: [number, number] | null): () => Node | undefined {
  return () => (span ? fromBinary(NodeSchema, buf.subarray(span[0], span[1])) : undefined);
}

export function decodeDiscoveryRequest(bytes: Uint8Array): Decoded<SotwRequest> {
  const buf = asBuffer(bytes);
  const reader = new Reader(buf, 0, buf.length);
  let versionInfo = "";
  let typeUrl = "";
  let responseNonce = "";
  const resourceNames: string[] = [];
  let detail: ErrorDetail | undefined;
  let node: [number, number] | null = null;
  while (!reader.done) {
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
        const [start, end] = reader.bytes();
        detail = errorDetail(buf, start, end);
        break;
      }
      default:
        reader.skip(wireType);
    }
  }
  return { request: { versionInfo, resourceNames, typeUrl, responseNonce, errorDetail: detail }, node: lazyNode(buf, node) };
}

export function decodeDeltaDiscoveryRequest(bytes: Uint8Array): Decoded<DeltaRequest> {
  const buf = asBuffer(bytes);
  const reader = new Reader(buf, 0, buf.length);
  let typeUrl = "";
  let responseNonce = "";
  const subscribe: string[] = [];
  const unsubscribe: string[] = [];
  const initial: Record<string, string> = Object.create(null) as Record<string, string>;
  let detail: ErrorDetail | undefined;
  let node: [number, number] | null = null;
  while (!reader.done) {
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
        const [start, end] = reader.bytes();
        const entry = new Reader(buf, start, end);
        let key = "";
        let value = "";
        while (!entry.done) {
          const [f, w] = entry.tag();
          if (f === 1 && w === 2) key = entry.string();
          else if (f === 2 && w === 2) value = entry.string();
          else entry.skip(w);
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
        const [start, end] = reader.bytes();
        detail = errorDetail(buf, start, end);
        break;
      }
      default:
        reader.skip(wireType);
    }
  }
  return {
    request: { typeUrl, resourceNamesSubscribe: subscribe, resourceNamesUnsubscribe: unsubscribe, initialResourceVersions: initial, responseNonce, errorDetail: detail },
    node: lazyNode(buf, node),
  };
}
