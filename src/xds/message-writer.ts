import { create, ScalarType, toBinary, type DescField, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { isWrapperDesc } from "@bufbuild/protobuf/wkt";
import { encodingBuffer } from "./encoding-pool.ts";
import { putVarint, varintSize } from "./varint.ts";

/**
 * protobuf-es's toBinary, compiled per message type into one straight-line
 * function that reads each field by a constant name and writes into one
 * reused buffer.
 *
 * toBinary calls a closure per field of the type whether it is set or not (a
 * Cluster has about sixty), and builds every sub-message in a forked writer
 * of its own: about 2.4 µs for a 54-byte EDS cluster once optimized. The
 * resources Signalbox builds set a handful of fields, so the generated check
 * of the others is most of the work here. The output is byte-identical to
 * toBinary: fields in field-number order (oneof members among them), map
 * entries in key order as Object.keys gives them, unknown fields last
 * (test/xds/message-writer.test.ts, and every resource of every translation
 * scenario in test/xds/resource-binary.test.ts).
 *
 * A type this does not compile (group-encoded fields, google.protobuf.Struct
 * held as JSON) is written by toBinary and copied in, so any message can be
 * passed.
 */

/** The bytes of `message` on their own, in a buffer of Node's pool (nothing in the server keeps these: it keeps fields, below). */
export function messageBinary<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): Buffer {
  pos = 0;
  writerFor(schema).run(message as unknown as Rec);
  const out = Buffer.allocUnsafe(pos);
  buf.copy(out, 0, 0, pos);
  return out;
}

/**
 * `message` as a length-delimited field: `head`, then the length of
 * `message`'s bytes, then the bytes, in one buffer for the cache to keep
 * (encoding-pool.ts). `head` is all that goes before the length: a field's tag
 * (a virtual host in a route configuration), or a google.protobuf.Any's
 * type_url field and value tag (a whole resource).
 */
export function messageField<Desc extends DescMessage>(head: Uint8Array, schema: Desc, message: MessageShape<Desc>): Buffer {
  pos = 0;
  writerFor(schema).run(message as unknown as Rec);
  const length = pos;
  const valueAt = head.length + varintSize(length);
  const out = encodingBuffer(valueAt + length);
  out.set(head, 0);
  putVarint(out, head.length, length);
  buf.copy(out, valueAt, 0, length);
  return out;
}

// --- the buffer written into --------------------------------------------------
// One message is written at a time: generated code calls only the helpers below
// and other generated writers, never back out.

type Rec = Record<string, unknown>;

let buf = Buffer.allocUnsafeSlow(64 * 1024);
let pos = 0;

function ensure(extra: number): void {
  if (pos + extra > buf.length) {
    const grown = Buffer.allocUnsafeSlow(Math.max(pos + extra, buf.length * 2));
    buf.copy(grown, 0, 0, pos);
    buf = grown;
  }
}

/** An unsigned varint (tags, lengths, uint32, enum values that are not negative). */
function varint(value: number): void {
  ensure(5);
  pos = putVarint(buf, pos, value);
}

/** Where a length-delimited value starts: one byte is kept for its length, which end() fills in. */
function begin(): number {
  ensure(1);
  return pos++;
}

/** The length of the value begun at `start`; a length over one byte moves the value along. */
function end(start: number): void {
  const length = pos - start - 1;
  if (length < 0x80) {
    buf[start] = length;
    return;
  }
  const extra = varintSize(length) - 1;
  ensure(extra);
  buf.copyWithin(start + 1 + extra, start + 1, pos);
  putVarint(buf, start, length);
  pos += extra;
}

function raw(bytes: Uint8Array): void {
  ensure(bytes.length);
  buf.set(bytes, pos);
  pos += bytes.length;
}

function string(value: string): void {
  if (typeof value !== "string") throw new Error(`invalid string: ${String(value)}`);
  const length = value.length;
  ensure(5 + 3 * length);
  if (length < 0x80) {
    // Short ASCII, the usual case: one length byte, the characters as bytes.
    const start = pos + 1;
    let i = 0;
    for (; i < length; i++) {
      const code = value.charCodeAt(i);
      if (code >= 0x80) break;
      buf[start + i] = code;
    }
    if (i === length) {
      buf[pos] = length;
      pos = start + length;
      return;
    }
  }
  // UTF-8 as TextEncoder writes it (a lone surrogate becomes U+FFFD), as toBinary does.
  pos = putVarint(buf, pos, Buffer.byteLength(value, "utf8"));
  pos += buf.write(value, pos, "utf8");
}

function bytes(value: Uint8Array): void {
  varint(value.length);
  raw(value);
}

function int32(value: number): void {
  if ((value | 0) !== value) throw new Error(`invalid int32: ${String(value)}`);
  if (value >= 0) return varint(value);
  // A negative int32 is sign-extended to ten bytes.
  ensure(10);
  let low = value >>> 0;
  for (let i = 0; i < 4; i++) {
    buf[pos++] = (low & 0x7f) | 0x80;
    low >>>= 7;
  }
  buf[pos++] = low | 0xf0;
  for (let i = 0; i < 4; i++) buf[pos++] = 0xff;
  buf[pos++] = 0x01;
}

function uint32(value: number): void {
  if ((value >>> 0) !== value) throw new Error(`invalid uint32: ${String(value)}`);
  varint(value);
}

function sint32(value: number): void {
  if ((value | 0) !== value) throw new Error(`invalid sint32: ${String(value)}`);
  varint(((value << 1) ^ (value >> 31)) >>> 0);
}

function fixed32(value: number): void {
  if ((value >>> 0) !== value) throw new Error(`invalid uint32: ${String(value)}`);
  ensure(4);
  pos = buf.writeUInt32LE(value, pos);
}

function sfixed32(value: number): void {
  if ((value | 0) !== value) throw new Error(`invalid int32: ${String(value)}`);
  ensure(4);
  pos = buf.writeInt32LE(value, pos);
}

const FLOAT32_MAX = 3.4028234663852886e38;

function float(value: number): void {
  if (typeof value !== "number") throw new Error(`invalid float32: ${typeof value}`);
  if (Number.isFinite(value) && (value > FLOAT32_MAX || value < -FLOAT32_MAX)) throw new Error(`invalid float32: ${value}`);
  ensure(4);
  pos = buf.writeFloatLE(value, pos);
}

function double(value: number): void {
  ensure(8);
  pos = buf.writeDoubleLE(value, pos);
}

function bool(value: boolean): void {
  ensure(1);
  buf[pos++] = value ? 1 : 0;
}

/**
 * 64-bit integers: a small non-negative int64 or uint64 (a Duration's seconds)
 * is written here; anything else (negative, large, a string under jstype, the
 * zigzag and fixed types) by protobuf-es's writer, which does their
 * conversions and checks.
 */
function long(type: ScalarType, value: unknown): void {
  if (typeof value === "bigint" && value >= 0n && value < 0x80000000n && (type === ScalarType.INT64 || type === ScalarType.UINT64)) {
    varint(Number(value));
    return;
  }
  const write = LONG_WRITE[type as keyof typeof LONG_WRITE];
  raw(write(new BinaryWriter(), value as bigint | string).finish());
}

const LONG_WRITE = {
  [ScalarType.INT64]: (writer: BinaryWriter, value: bigint | string) => writer.int64(value),
  [ScalarType.UINT64]: (writer: BinaryWriter, value: bigint | string) => writer.uint64(value),
  [ScalarType.SINT64]: (writer: BinaryWriter, value: bigint | string) => writer.sint64(value),
  [ScalarType.FIXED64]: (writer: BinaryWriter, value: bigint | string) => writer.fixed64(value),
  [ScalarType.SFIXED64]: (writer: BinaryWriter, value: bigint | string) => writer.sfixed64(value),
};

function unknownFields(fields: readonly { no: number; wireType: WireType; data: Uint8Array }[]): void {
  for (const field of fields) {
    varint(((field.no << 3) | field.wireType) >>> 0);
    raw(field.data);
  }
}

const helpers = { varint, begin, end, raw, string, bytes, int32, uint32, sint32, fixed32, sfixed32, float, double, bool, long, unknownFields, create };
const HELPER_NAMES = Object.keys(helpers);

// --- compiling a type's writer ---------------------------------------------------

interface Writer {
  run: (message: Rec) => void;
}

const writers = new WeakMap<DescMessage, Writer>();

function writerFor(desc: DescMessage): Writer {
  let writer = writers.get(desc);
  if (writer) return writer;
  // Registered before its fields compile, so recursive types refer to it.
  writer = { run: () => {} };
  writers.set(desc, writer);
  try {
    writer.run = compileWriter(desc);
  } catch (e) {
    if (!(e instanceof Unsupported)) {
      writers.delete(desc); // never keep the placeholder, which would write nothing
      throw e;
    }
    writer.run = (message) => raw(toBinary(desc, message as MessageShape<DescMessage>));
  }
  return writer;
}

/** A field kind this compiler leaves to toBinary (for the whole type that has it). */
class Unsupported extends Error {}

/** google.protobuf.FeatureSet.FieldPresence, as DescField.presence holds it. */
const IMPLICIT = 2;
const LEGACY_REQUIRED = 3;

function compileWriter(desc: DescMessage): (message: Rec) => void {
  const refs: unknown[] = [];
  const ref = (value: unknown): string => `r${refs.push(value) - 1}`;
  const lines: string[] = [];
  const fields = desc.fields.concat().sort((a, b) => a.number - b.number);
  for (const field of fields) lines.push(fieldCode(field, ref));
  const typeCheck =
    fields.length > 0 ? `if (m.$typeName !== ${JSON.stringify(desc.typeName)}) throw new Error("cannot write " + m.$typeName + " as ${desc.typeName}");` : "";
  const refNames = refs.map((_, i) => `r${i}`);
  const source = [
    `const { ${HELPER_NAMES.join(", ")} } = helpers;`,
    `const HOP = Object.prototype.hasOwnProperty;`,
    `return function write_${desc.typeName.replace(/[^A-Za-z0-9_]/g, "_")}(m) {`,
    `  let v;`,
    `  ${typeCheck}`,
    ...lines.map((line) => `  ${line}`),
    `  if (m.$unknown !== undefined) unknownFields(m.$unknown);`,
    `};`,
  ].join("\n");
  return new Function("helpers", ...refNames, source)(helpers, ...refs) as (message: Rec) => void;
}

function fieldCode(field: DescField, ref: (value: unknown) => string): string {
  const name = JSON.stringify(field.localName);
  if (field.fieldKind === "list") return listCode(field, ref);
  if (field.fieldKind === "map") return mapCode(field, ref);
  if (field.fieldKind === "message" && field.delimitedEncoding) throw new Unsupported();
  if (field.fieldKind === "message" && usesJson(field.message, field.parent)) throw new Unsupported();
  const write = field.fieldKind === "message" ? singularMessageCode(field, "v", ref) : scalarCode(scalarOf(field), field.number, "v");
  if (field.oneof) {
    return `v = m[${JSON.stringify(field.oneof.localName)}]; if (v.case === ${name}) { v = v.value; ${write} }`;
  }
  if (field.presence !== IMPLICIT || field.fieldKind === "message") {
    const missing = field.presence === LEGACY_REQUIRED ? ` else throw new Error(${JSON.stringify(`cannot encode ${field.toString()} to binary: required field not set`)});` : "";
    return `v = m[${name}]; if (v !== undefined && HOP.call(m, ${name})) { ${write} }${missing}`;
  }
  return `v = m[${name}]; if (${notZero(field, "v")}) { ${write} }`;
}

/** The implicit-presence test toBinary applies: whether the value is written. */
function notZero(field: DescField & { fieldKind: "scalar" | "enum" }, v: string): string {
  if (field.fieldKind === "enum") return `${v} !== ${field.enum.values[0]?.number ?? 0}`;
  switch (field.scalar) {
    case ScalarType.BOOL:
      return `${v} !== false`;
    case ScalarType.STRING:
      return `${v} !== ""`;
    case ScalarType.BYTES:
      return `(!(${v} instanceof Uint8Array) || ${v}.byteLength > 0)`;
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return `!Object.is(${v}, 0)`;
    default:
      return `${v} != 0`; // 0, 0n and "0" alike
  }
}

/** The scalar a non-message field (or its elements, or its map values) is written as: enums as int32. */
function scalarOf(field: DescField): ScalarType {
  return field.scalar ?? ScalarType.INT32;
}

function tag(number: number, wireType: WireType): number {
  return ((number << 3) | wireType) >>> 0;
}

/** Per scalar type, its wire type and the helper call that writes a value of it (no tag). */
const SCALARS: Record<ScalarType, { readonly wireType: WireType; readonly write: (v: string) => string }> = {
  [ScalarType.STRING]: { wireType: WireType.LengthDelimited, write: (v) => `string(${v});` },
  [ScalarType.BYTES]: { wireType: WireType.LengthDelimited, write: (v) => `bytes(${v});` },
  [ScalarType.BOOL]: { wireType: WireType.Varint, write: (v) => `bool(${v});` },
  [ScalarType.INT32]: { wireType: WireType.Varint, write: (v) => `int32(${v});` },
  [ScalarType.UINT32]: { wireType: WireType.Varint, write: (v) => `uint32(${v});` },
  [ScalarType.SINT32]: { wireType: WireType.Varint, write: (v) => `sint32(${v});` },
  [ScalarType.FIXED32]: { wireType: WireType.Bit32, write: (v) => `fixed32(${v});` },
  [ScalarType.SFIXED32]: { wireType: WireType.Bit32, write: (v) => `sfixed32(${v});` },
  [ScalarType.FLOAT]: { wireType: WireType.Bit32, write: (v) => `float(${v});` },
  [ScalarType.DOUBLE]: { wireType: WireType.Bit64, write: (v) => `double(${v});` },
  [ScalarType.INT64]: { wireType: WireType.Varint, write: (v) => `long(${ScalarType.INT64}, ${v});` },
  [ScalarType.UINT64]: { wireType: WireType.Varint, write: (v) => `long(${ScalarType.UINT64}, ${v});` },
  [ScalarType.SINT64]: { wireType: WireType.Varint, write: (v) => `long(${ScalarType.SINT64}, ${v});` },
  [ScalarType.FIXED64]: { wireType: WireType.Bit64, write: (v) => `long(${ScalarType.FIXED64}, ${v});` },
  [ScalarType.SFIXED64]: { wireType: WireType.Bit64, write: (v) => `long(${ScalarType.SFIXED64}, ${v});` },
};

function scalarCode(scalar: ScalarType, number: number, v: string): string {
  return `varint(${tag(number, SCALARS[scalar].wireType)}); ${SCALARS[scalar].write(v)}`;
}

/** A length-delimited sub-message: the child's writer between begin() and end(). */
function messageCode(number: number, child: DescMessage, v: string, ref: (value: unknown) => string): string {
  return `varint(${tag(number, WireType.LengthDelimited)}); { const s = begin(); ${ref(writerFor(child))}.run(${v}); end(s); }`;
}

function singularMessageCode(field: DescField & { fieldKind: "message" }, v: string, ref: (value: unknown) => string): string {
  const child = field.message;
  if (!field.oneof && isWrapperDesc(child)) {
    // protobuf-es holds a singular wrapper field (UInt32Value...) as its bare value.
    const inner = child.fields[0] as DescField & { fieldKind: "scalar" };
    return `varint(${tag(field.number, WireType.LengthDelimited)}); { const s = begin(); if (${notZero(inner, v)}) { ${scalarCode(inner.scalar, 1, v)} } end(s); }`;
  }
  return messageCode(field.number, child, v, ref);
}

function listCode(field: DescField & { fieldKind: "list" }, ref: (value: unknown) => string): string {
  const items = `m[${JSON.stringify(field.localName)}]`;
  if (field.listKind === "message") {
    if (field.delimitedEncoding || usesJson(field.message, field.parent)) throw new Unsupported();
    const empty = ref(field.message);
    return `v = ${items}; for (let i = 0; i < v.length; i++) { const x = v[i] === undefined ? create(${empty}) : v[i]; ${messageCode(field.number, field.message, "x", ref)} }`;
  }
  const scalar = scalarOf(field);
  if (field.packed) {
    return `v = ${items}; if (v.length !== 0) { varint(${tag(field.number, WireType.LengthDelimited)}); const s = begin(); for (let i = 0; i < v.length; i++) { ${SCALARS[scalar].write("v[i]")} } end(s); }`;
  }
  return `v = ${items}; for (let i = 0; i < v.length; i++) { ${scalarCode(scalar, field.number, "v[i]")} }`;
}

function mapCode(field: DescField & { fieldKind: "map" }, ref: (value: unknown) => string): string {
  if (field.mapKind === "message" && usesJson(field.message, field.parent)) throw new Unsupported();
  const key = mapKeyCode(field.mapKey);
  let value: string;
  if (field.mapKind === "message") {
    const empty = ref(field.message);
    value = `const x = e === undefined ? create(${empty}) : e; ${messageCode(2, field.message, "x", ref)}`;
  } else {
    value = scalarCode(scalarOf(field), 2, "e");
  }
  return (
    `v = m[${JSON.stringify(field.localName)}]; for (const k of Object.keys(v)) { const e = v[k]; ` +
    `varint(${tag(field.number, WireType.LengthDelimited)}); const s = begin(); ${key} ${value} end(s); }`
  );
}

/** A map key is held as an object key (a string): converted back to its type as toBinary converts it. */
function mapKeyCode(type: ScalarType): string {
  switch (type) {
    case ScalarType.STRING:
      return scalarCode(type, 1, "k");
    case ScalarType.BOOL:
      return scalarCode(type, 1, `(k === "true" ? true : k === "false" ? false : k)`);
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      throw new Unsupported(); // 64-bit map keys: left to toBinary's parsing of them
    default:
      return `{ const n = Number.parseInt(k); ${scalarCode(type, 1, "(Number.isFinite(n) ? n : k)")} }`;
  }
}

/** protobuf-es holds google.protobuf.Struct fields (outside Value) as plain JSON, not as messages. */
function usesJson(message: DescMessage, parent: DescMessage): boolean {
  return message.typeName === "google.protobuf.Struct" && parent.typeName !== "google.protobuf.Value";
}
