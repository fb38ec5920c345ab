import { create as createGeneric, isMessage, ScalarType, type DescField, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { scalarZeroValue } from "@bufbuild/protobuf/reflect";
import { isWrapperDesc } from "@bufbuild/protobuf/wkt";

/**
 * protobuf-es's `create`, compiled per message type into one object literal.
 *
 * Translation builds hundreds of thousands of messages per full build (a
 * 5,000-service mesh: ~130,000 create calls). protobuf-es's create walks a
 * list of the type's fields and stores each by a computed name, which for a
 * 60-field Cluster costs microseconds and gives every message a shape that
 * depends on which fields were set. Here each type gets a function, built
 * once from its descriptor, that returns a literal holding every field in
 * declaration order, so all messages of a type share one shape and are
 * created in one allocation.
 *
 * The result equals protobuf-es's field for field, with two differences that
 * protobuf-es itself does not observe:
 *  - an unset message field (or proto3 `optional` scalar) is an own property
 *    holding `undefined` rather than an absent one; protobuf-es treats both as
 *    unset (reflect's unsafeIsSet);
 *  - an unset list, map or oneof holds one frozen empty value shared by every
 *    message, not a fresh one. Translation never changes a message once built
 *    (the memos and the cache's encode-once tables rely on that), and most
 *    fields of a message are unset: a full build keeps about a tenth less
 *    (9.5 of 84 MB) and runs about 40 ms faster. Code that did change one
 *    in place would throw, not alter every message.
 * test/translate/create.test.ts compares the two over every message type of
 * the registry. Types from files other than proto3 (proto2 and editions, where
 * protobuf-es may need a prototype chain for field presence) go to
 * protobuf-es's create unchanged.
 */
export function create<Desc extends DescMessage>(schema: Desc, init?: MessageInitShape<Desc>): MessageShape<Desc> {
  if (isMessage(init, schema)) return init as MessageShape<Desc>;
  return compiledFor(schema)(init) as MessageShape<Desc>;
}

type Init = Record<string, unknown> | null | undefined;
type Compiled = (init: Init) => unknown;
type Convert = (value: unknown) => unknown;

const compiled = new WeakMap<DescMessage, Compiled>();

function compiledFor(desc: DescMessage): Compiled {
  let fn = compiled.get(desc);
  if (!fn) compiled.set(desc, (fn = compile(desc)));
  return fn;
}

/** google.protobuf.Edition.EDITION_PROTO3 and FeatureSet.FieldPresence.IMPLICIT. */
const EDITION_PROTO3 = 999;
const IMPLICIT = 2;

function compile(desc: DescMessage): Compiled {
  if (desc.file.edition !== EDITION_PROTO3) return (init) => createGeneric(desc, init as MessageInitShape<DescMessage>);
  // Values the generated code refers to by index: zero values, converters.
  const refs: unknown[] = [];
  const ref = (value: unknown): string => `r[${refs.push(value) - 1}]`;
  const props: string[] = [`$typeName: ${JSON.stringify(desc.typeName)}`];
  for (const member of desc.members) {
    const key = JSON.stringify(member.localName);
    const read = `i[${key}]`;
    if (member.kind === "oneof") {
      props.push(`${key}: ${ref(oneofConverter(member.fields))}(${read})`);
      continue;
    }
    switch (member.fieldKind) {
      case "message": {
        const convert = messageConverter(member);
        props.push(`${key}: ${read} != null ? ${convert ? `${ref(convert)}(${read})` : read} : undefined`);
        break;
      }
      case "list": {
        const convert = member.listKind === "message" ? messageConverter(member) : member.scalar === ScalarType.BYTES ? toBytes : undefined;
        props.push(convert ? `${key}: Array.isArray(${read}) ? ${read}.map(${ref(convert)}) : ${read} ?? EA` : `${key}: ${read} ?? EA`);
        break;
      }
      case "map": {
        const convert = member.mapKind === "message" ? messageConverter(member) : member.scalar === ScalarType.BYTES ? toBytes : undefined;
        props.push(convert ? `${key}: ${ref(mapConverter(convert))}(${read})` : `${key}: ${read} ?? EM`);
        break;
      }
      default: {
        const zero = member.presence === IMPLICIT ? zeroValue(member) : undefined;
        const value = member.fieldKind === "scalar" && member.scalar === ScalarType.BYTES ? `${ref(toBytes)}(${read})` : read;
        // One zero value per field, shared by every message as protobuf-es shares it (an empty bytes value is one Uint8Array).
        props.push(`${key}: ${read} != null ? ${value} : ${zero === undefined ? "undefined" : literal(zero, ref)}`);
      }
    }
  }
  const body = `return function create(init) { const i = init ?? E; return { ${props.join(", ")} }; };`;
  return new Function("r", "E", "EA", "EM", body)(refs, EMPTY, EMPTY_ARRAY, EMPTY_MAP) as Compiled;
}

const EMPTY = Object.freeze({});
/** What unset lists and maps hold (see create). */
const EMPTY_ARRAY = Object.freeze([]);
const EMPTY_MAP = Object.freeze({});

function literal(value: unknown, ref: (value: unknown) => string): string {
  if (typeof value === "string" || typeof value === "boolean" || (typeof value === "number" && Number.isFinite(value))) return JSON.stringify(value);
  return ref(value);
}

function zeroValue(field: DescField & { fieldKind: "scalar" | "enum" }): unknown {
  const defaultValue = field.getDefaultValue();
  if (defaultValue !== undefined) return field.fieldKind === "scalar" && field.longAsString ? defaultValue.toString() : defaultValue;
  return field.fieldKind === "scalar" ? scalarZeroValue(field.scalar, field.longAsString) : field.enum.values[0]?.number;
}

/** Any ArrayLike<number> given for a bytes field becomes a Uint8Array, as protobuf-es does. */
function toBytes(value: unknown): unknown {
  return Array.isArray(value) ? new Uint8Array(value as number[]) : value;
}

/** How an init value for a message-typed field becomes the message; undefined: used as given. */
function messageConverter(field: DescField & { message: DescMessage }): Convert | undefined {
  const message = field.message;
  if (field.fieldKind === "message" && !field.oneof && isWrapperDesc(message)) {
    // Wrapper types in singular fields hold the unwrapped value.
    return message.fields[0]?.scalar === ScalarType.BYTES ? toBytes : undefined;
  }
  // Struct is a plain JSON object in a field, except inside google.protobuf.Value.
  if (message.typeName === "google.protobuf.Struct" && field.parent.typeName !== "google.protobuf.Value") return undefined;
  return (value) => (!isObject(value) || isMessage(value, message) ? value : compiledFor(message)(value as Init));
}

function oneofConverter(fields: readonly DescField[]): Convert {
  const byCase = new Map<string, Convert>();
  for (const field of fields) {
    const convert =
      field.fieldKind === "message" ? messageConverter(field) : field.fieldKind === "scalar" && field.scalar === ScalarType.BYTES ? toBytes : undefined;
    byCase.set(field.localName, convert ?? ((value) => value));
  }
  return (value) => {
    const selected = value as { case?: string; value?: unknown } | null | undefined;
    if (selected?.case != null) {
      const convert = byCase.get(selected.case);
      if (convert) return { case: selected.case, value: convert(selected.value) };
    }
    return NO_CASE;
  };
}

/** What an unset oneof holds (see create). */
const NO_CASE = Object.freeze({ case: undefined });

function mapConverter(convert: Convert): Convert {
  return (value) => {
    if (!isObject(value)) return value ?? EMPTY_MAP;
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value)) Object.defineProperty(out, key, { value: convert((value as Record<string, unknown>)[key]), enumerable: true, writable: true, configurable: true });
    return out;
  };
}

function isObject(value: unknown): value is object {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}
