import { ScalarType, toBinary, type DescField, type DescMessage, type Message, type MessageShape } from "@bufbuild/protobuf";
import { scalarZeroValue } from "@bufbuild/protobuf/reflect";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";

/**
 * Binary encoding that reuses the bytes of shared sub-messages.
 *
 * Translation hands many resources the same sub-message objects: one virtual
 * host sits in the route configuration of every caller, across snapshots too.
 * protobuf-es would encode such a sub-message again inside every parent; here
 * its bytes are encoded once per object (messages are never mutated once
 * built) and copied into each parent. The output is byte-identical to
 * toBinary: protobuf-es writes fields in field-number order (unknown fields
 * last), and so does this (test/xds/resource-binary.test.ts). Endpoint
 * assignments have their own writer (endpoint-binary.ts).
 */

const encodedOnce = new WeakMap<object, Uint8Array>();

/** toBinary, once per message object. */
export function binaryOnce<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): Uint8Array {
  let bytes = encodedOnce.get(message);
  if (!bytes) {
    bytes = toBinary(schema, message);
    encodedOnce.set(message, bytes);
  }
  return bytes;
}

/**
 * toBinary of `message` as pieces to concatenate, with the elements of its
 * repeated message field `listField` written by `element(item, tag)` as that
 * field (`tag`, the length, the bytes), once per element object (elements are
 * shared sub-messages) rather than encoded again. Pieces, so the caller can
 * add its own framing in the same copy.
 */
export function composedParts<Desc extends DescMessage, Item extends Message>(
  schema: Desc,
  message: MessageShape<Desc>,
  listField: string,
  element: (item: Item, tag: Uint8Array) => Uint8Array,
): Uint8Array[] {
  const field = schema.field[listField];
  if (field?.fieldKind !== "list" || field.listKind !== "message") {
    throw new Error(`${schema.typeName}.${listField} is not a repeated message field`);
  }
  const items = (message as unknown as Record<string, unknown>)[field.localName] as Item[];
  const number = field.number;
  // Usually every other field is unset but a name (a route configuration):
  // then nothing needs toBinary, and the name is written here.
  const others = hasUnknown(message) ? "some" : otherFieldsSet(schema, message, field);
  const head: Uint8Array[] = [];
  const tail: Uint8Array[] = [];
  if (others === "some") {
    // Unknown fields are written last by toBinary: they belong to the tail only.
    head.push(toBinary(schema, { ...onlyFields(schema, message, (f) => f.number < number), $unknown: undefined }));
    tail.push(toBinary(schema, onlyFields(schema, message, (f) => f.number > number)));
  } else if (others !== "none") {
    (others.number < number ? head : tail).push(header.tag(others.number, WireType.LengthDelimited).string(others.value).finish());
  }
  const parts = head;
  for (const item of items) parts.push(framed(number, item, element));
  parts.push(...tail);
  return parts;
}

/** Per field number: the field's tag, and each element's bytes as that field. */
const framedByField = new Map<number, { readonly tag: Uint8Array; readonly byItem: WeakMap<object, Uint8Array> }>();

/** An element as its field (tag, length, bytes), once per element object (they are shared). */
function framed<Item extends Message>(number: number, item: Item, element: (item: Item, tag: Uint8Array) => Uint8Array): Uint8Array {
  let field = framedByField.get(number);
  if (!field) framedByField.set(number, (field = { tag: header.tag(number, WireType.LengthDelimited).finish(), byItem: new WeakMap() }));
  let bytes = field.byItem.get(item);
  if (!bytes) {
    bytes = element(item, field.tag);
    field.byItem.set(item, bytes);
  }
  return bytes;
}

/**
 * Which fields besides `list` are set: "none"; one string field (a name), to
 * be written directly; or "some" other combination, encoded by toBinary.
 */
function otherFieldsSet(
  schema: DescMessage,
  message: object,
  list: DescField,
): "none" | "some" | { readonly number: number; readonly value: string } {
  const values = message as Record<string, unknown>;
  let single: { number: number; value: string } | null = null;
  for (const member of schema.members) {
    if (member === list) continue;
    const value = values[member.localName];
    if (member.kind === "oneof") {
      if ((value as { case: unknown }).case !== undefined) return "some";
      continue;
    }
    if (isZero(member, value)) continue;
    if (single || member.fieldKind !== "scalar" || member.scalar !== ScalarType.STRING) return "some";
    single = { number: member.number, value: value as string };
  }
  return single ?? "none";
}

/** Whether a field holds what toBinary leaves out. */
function isZero(field: DescField, value: unknown): boolean {
  switch (field.fieldKind) {
    case "list":
      return (value as unknown[]).length === 0;
    case "map":
      return Object.keys(value as object).length === 0;
    case "message":
      return value === undefined;
    case "enum":
      return field.presence === IMPLICIT ? value === (field.enum.values[0]?.number ?? 0) : value === undefined;
    case "scalar":
      if (field.presence !== IMPLICIT) return value === undefined;
      return value instanceof Uint8Array ? value.length === 0 : value === scalarZeroValue(field.scalar, field.longAsString);
  }
}

function hasUnknown(message: { $unknown?: unknown[] }): boolean {
  return message.$unknown !== undefined && message.$unknown.length > 0;
}

/** Tag and length prefixes (finish() keeps the writer's buffer for the next one). */
const header = new BinaryWriter();

/** A shallow copy of `message` with every field that `keep` rejects reset to its zero value. */
function onlyFields<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>, keep: (field: DescField) => boolean): MessageShape<Desc> {
  const source = message as unknown as Record<string, unknown>;
  const copy: Record<string, unknown> = { ...source };
  for (const member of schema.members) {
    if (member.kind === "oneof") {
      const selected = (source[member.localName] as { case: string | undefined }).case;
      const field = member.fields.find((f) => f.localName === selected);
      if (field && !keep(field)) copy[member.localName] = { case: undefined };
    } else if (!keep(member)) {
      copy[member.localName] = zeroValue(member);
    }
  }
  return copy as unknown as MessageShape<Desc>;
}

function zeroValue(field: DescField): unknown {
  switch (field.fieldKind) {
    case "list":
      return [];
    case "map":
      return {};
    case "message":
      return undefined;
    case "enum":
      return field.presence === IMPLICIT ? (field.enum.values[0]?.number ?? 0) : undefined;
    case "scalar":
      return field.presence === IMPLICIT ? scalarZeroValue(field.scalar, field.longAsString) : undefined;
  }
}

/** google.protobuf.FeatureSet.FieldPresence.IMPLICIT (proto3 fields without `optional`). */
const IMPLICIT = 2;
