/**
 * Just enough protobuf wire format for the simulated Envoys and the floor server:
 * read the fields of discovery responses (and the few resource fields Envoy
 * follows: a cluster's EDS name, a listener's RDS names) and write requests,
 * without decoding whole messages. Keeps the simulated fleet cheap, so the
 * two cores go to the server under test.
 */
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";

export interface Span {
  readonly start: number;
  readonly end: number;
}

function varint(buf: Uint8Array, pos: number): [value: number, next: number] {
  let value = 0;
  let shift = 0;
  for (;;) {
    const byte = buf[pos++] as number;
    value += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return [value, pos];
    shift += 7;
  }
}

/**
 * Calls `onField(field, wireType, start, end)` for each field of the message in
 * buf[start, end): for length-delimited fields start/end delimit the payload,
 * for varints `start` is the value.
 */
export function eachField(
  buf: Uint8Array,
  start: number,
  end: number,
  onField: (field: number, wireType: number, a: number, b: number) => void,
): void {
  let pos = start;
  while (pos < end) {
    const [tag, afterTag] = varint(buf, pos);
    const field = Math.floor(tag / 8);
    const wireType = tag & 7;
    pos = afterTag;
    switch (wireType) {
      case 0: {
        const [value, next] = varint(buf, pos);
        onField(field, wireType, value, next);
        pos = next;
        break;
      }
      case 1:
        pos += 8;
        break;
      case 2: {
        const [length, next] = varint(buf, pos);
        onField(field, wireType, next, next + length);
        pos = next + length;
        break;
      }
      case 5:
        pos += 4;
        break;
      default:
        throw new Error(`unsupported wire type ${wireType}`);
    }
  }
}

const decoder = new TextDecoder();
export function text(buf: Uint8Array, span: Span): string {
  return decoder.decode(buf.subarray(span.start, span.end));
}

export interface SotwResponse {
  version: string;
  typeUrl: string;
  nonce: string;
  /** Spans of each resource's Any.value. */
  resources: Span[];
}

export function parseSotwResponse(buf: Uint8Array): SotwResponse {
  const out: SotwResponse = { version: "", typeUrl: "", nonce: "", resources: [] };
  eachField(buf, 0, buf.length, (field, _w, a, b) => {
    if (field === 1) out.version = text(buf, { start: a, end: b });
    else if (field === 2) out.resources.push(anyValue(buf, a, b));
    else if (field === 4) out.typeUrl = text(buf, { start: a, end: b });
    else if (field === 5) out.nonce = text(buf, { start: a, end: b });
  });
  return out;
}

export interface DeltaResponse {
  typeUrl: string;
  nonce: string;
  /** Each resource's name, version and Any.value span. */
  resources: Array<{ name: string; version: string; value: Span }>;
  removed: string[];
}

export function parseDeltaResponse(buf: Uint8Array): DeltaResponse {
  const out: DeltaResponse = { typeUrl: "", nonce: "", resources: [], removed: [] };
  eachField(buf, 0, buf.length, (field, _w, a, b) => {
    if (field === 2) {
      let name = "";
      let version = "";
      let value: Span = { start: 0, end: 0 };
      eachField(buf, a, b, (f, _w2, c, d) => {
        if (f === 1) version = text(buf, { start: c, end: d });
        else if (f === 2) value = anyValue(buf, c, d);
        else if (f === 3) name = text(buf, { start: c, end: d });
      });
      out.resources.push({ name, version, value });
    } else if (field === 4) out.typeUrl = text(buf, { start: a, end: b });
    else if (field === 5) out.nonce = text(buf, { start: a, end: b });
    else if (field === 6) out.removed.push(text(buf, { start: a, end: b }));
  });
  return out;
}

function anyValue(buf: Uint8Array, start: number, end: number): Span {
  let value: Span = { start: end, end };
  eachField(buf, start, end, (field, _w, a, b) => {
    if (field === 2) value = { start: a, end: b };
  });
  return value;
}

/** The name of a resource (field 1 of Cluster, ClusterLoadAssignment, Listener, RouteConfiguration). */
export function resourceName(buf: Uint8Array, span: Span): string {
  let name = "";
  eachField(buf, span.start, span.end, (field, _w, a, b) => {
    if (field === 1 && name === "") name = text(buf, { start: a, end: b });
  });
  return name;
}

const EDS = 3;

/** For an EDS cluster, the name Envoy subscribes to in EDS (service_name, else the cluster name); else null. */
export function clusterEdsName(buf: Uint8Array, span: Span): string | null {
  let name = "";
  let type = -1;
  let serviceName = "";
  eachField(buf, span.start, span.end, (field, wire, a, b) => {
    if (field === 1) name = text(buf, { start: a, end: b });
    else if (field === 2 && wire === 0) type = a;
    else if (field === 3 && wire === 2) {
      eachField(buf, a, b, (f, _w, c, d) => {
        if (f === 2) serviceName = text(buf, { start: c, end: d });
      });
    }
  });
  return type === EDS ? serviceName || name : null;
}

/** The RDS route configuration names an HTTP connection manager (in a filter chain or an API listener) asks for. */
export function listenerRouteNames(buf: Uint8Array, span: Span): string[] {
  const names: string[] = [];
  const fromHcm = (a: number, b: number): void => {
    eachField(buf, a, b, (field, _w, c, d) => {
      if (field !== 3) return; // rds
      eachField(buf, c, d, (f, _w2, e, g) => {
        if (f === 2) names.push(text(buf, { start: e, end: g }));
      });
    });
  };
  eachField(buf, span.start, span.end, (field, _w, a, b) => {
    if (field === 3) {
      // filter_chains -> filters -> typed_config (Any) -> value
      eachField(buf, a, b, (f, _w2, c, d) => {
        if (f !== 3) return;
        eachField(buf, c, d, (g, _w3, e, h) => {
          if (g !== 4) return;
          const value = anyValue(buf, e, h);
          fromHcm(value.start, value.end);
        });
      });
    } else if (field === 19) {
      eachField(buf, a, b, (f, _w2, c, d) => {
        if (f !== 1) return;
        const value = anyValue(buf, c, d);
        fromHcm(value.start, value.end);
      });
    }
  });
  return names;
}

/** The node a simulated Envoy sends on its first request (encoded once per proxy). */
export function encodeNode(id: string, cluster: string, inboundPort: number, appPort: number): Uint8Array {
  // Struct { fields: map<string, Value> }, Value.string_value = 3.
  const entry = (key: string, value: string) =>
    new BinaryWriter()
      .tag(1, WireType.LengthDelimited)
      .string(key)
      .tag(2, WireType.LengthDelimited)
      .bytes(new BinaryWriter().tag(3, WireType.LengthDelimited).string(value).finish())
      .finish();
  const metadata = new BinaryWriter()
    .tag(1, WireType.LengthDelimited)
    .bytes(entry("SIGNALBOX_INBOUND_PORT", String(inboundPort)))
    .tag(1, WireType.LengthDelimited)
    .bytes(entry("SIGNALBOX_APP_PORT", String(appPort)))
    .finish();
  return new BinaryWriter()
    .tag(1, WireType.LengthDelimited)
    .string(id)
    .tag(2, WireType.LengthDelimited)
    .string(cluster)
    .tag(3, WireType.LengthDelimited)
    .bytes(metadata)
    .tag(6, WireType.LengthDelimited)
    .string("envoy")
    .finish();
}

/** A state-of-the-world DiscoveryRequest. */
export function sotwRequest(typeUrl: string, version: string, nonce: string, names: readonly string[], node: Uint8Array | null): Uint8Array {
  const writer = new BinaryWriter();
  if (version) writer.tag(1, WireType.LengthDelimited).string(version);
  if (node) writer.tag(2, WireType.LengthDelimited).bytes(node);
  for (const name of names) writer.tag(3, WireType.LengthDelimited).string(name);
  writer.tag(4, WireType.LengthDelimited).string(typeUrl);
  if (nonce) writer.tag(5, WireType.LengthDelimited).string(nonce);
  return writer.finish();
}

/** An incremental DeltaDiscoveryRequest. */
export function deltaRequest(
  typeUrl: string,
  nonce: string,
  subscribe: readonly string[],
  unsubscribe: readonly string[],
  node: Uint8Array | null,
): Uint8Array {
  const writer = new BinaryWriter();
  if (node) writer.tag(1, WireType.LengthDelimited).bytes(node);
  writer.tag(2, WireType.LengthDelimited).string(typeUrl);
  for (const name of subscribe) writer.tag(3, WireType.LengthDelimited).string(name);
  for (const name of unsubscribe) writer.tag(4, WireType.LengthDelimited).string(name);
  if (nonce) writer.tag(6, WireType.LengthDelimited).string(nonce);
  return writer.finish();
}

/** Reads field 4 (SotW) / 2 (delta) type_url, the response nonce and, once, the node's cluster, from a request. */
export function parseRequest(buf: Uint8Array, delta: boolean): { typeUrl: string; nonce: string; cluster: string | null } {
  const out = { typeUrl: "", nonce: "", cluster: null as string | null };
  const typeField = delta ? 2 : 4;
  const nonceField = delta ? 6 : 5;
  const nodeField = delta ? 1 : 2;
  eachField(buf, 0, buf.length, (field, _w, a, b) => {
    if (field === typeField) out.typeUrl = text(buf, { start: a, end: b });
    else if (field === nonceField) out.nonce = text(buf, { start: a, end: b });
    else if (field === nodeField) {
      eachField(buf, a, b, (f, _w2, c, d) => {
        if (f === 2) out.cluster = text(buf, { start: c, end: d });
      });
    }
  });
  return out;
}

export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
