// Builds small proto3 message types at runtime, annotated with PGV rules, so that the
// rule kinds Envoy's protos do not happen to use (timestamps, bytes, well-known string
// formats, ...) can be tested with the same interpreter. The descriptors go through
// the ordinary protobuf-es path: options are set with setExtension() on real
// FieldOptions / OneofOptions / MessageOptions, and a FileRegistry is built from a
// FileDescriptorProto.
import {
  create,
  createFileRegistry,
  createRegistry,
  setExtension,
  type DescFile,
  type DescMessage,
  type FileRegistry,
  type MessageInitShape,
  type Registry,
} from "@bufbuild/protobuf";
import { WireType } from "@bufbuild/protobuf/wire";
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FieldOptionsSchema,
  FileDescriptorProtoSchema,
  file_google_protobuf_any,
  file_google_protobuf_duration,
  file_google_protobuf_timestamp,
  file_google_protobuf_wrappers,
  MessageOptionsSchema,
  OneofOptionsSchema,
  type DescriptorProto,
  type FieldDescriptorProto,
} from "@bufbuild/protobuf/wkt";
import {
  disabled,
  FieldRulesSchema,
  file_validate_validate,
  required,
  rules,
} from "../../src/gen/validate/validate_pb.ts";

export const T = FieldDescriptorProto_Type;
export type RulesInit = MessageInitShape<typeof FieldRulesSchema>;

export interface FieldSpec {
  name: string;
  type: FieldDescriptorProto_Type;
  /** Fully qualified, with leading dot, for message and enum fields. */
  typeName?: string;
  repeated?: boolean;
  /** proto3 `optional` (explicit presence). */
  optional?: boolean;
  /** Index into MessageSpec.oneofs. */
  oneof?: number;
  rules?: RulesInit;
  /** map<key, value>: `type`/`typeName` describe the value. */
  mapKey?: FieldDescriptorProto_Type;
}

export interface MessageSpec {
  name: string;
  fields: FieldSpec[];
  oneofs?: { name: string; required?: boolean }[];
  disabled?: boolean;
  /** Sets `(validate.ignored)` (1072), which this repo's validate.proto does not define, as an unknown option. */
  ignored?: boolean;
}

/** A bool option that this repo's validate.proto lacks (newer PGV has it), as a raw unknown field. */
export function unknownTrue(no: number): { no: number; wireType: WireType; data: Uint8Array }[] {
  return [{ no, wireType: WireType.Varint, data: new Uint8Array([1]) }];
}

function camel(s: string): string {
  return s.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());
}

function upperCamel(s: string): string {
  const c = camel(s);
  return c.charAt(0).toUpperCase() + c.slice(1);
}

export const PKG = "sbtest";

/** create() ignores `$unknown` in an init object; carry it over for the rule-type message. */
function createRules(init: RulesInit) {
  const fr = create(FieldRulesSchema, init);
  const unknown = (init as { type?: { value?: { $unknown?: unknown } } }).type?.value?.$unknown;
  if (unknown !== undefined && fr.type.case !== undefined) {
    fr.type.value.$unknown = unknown as ReturnType<typeof unknownTrue>;
  }
  return fr;
}

function buildMessage(spec: MessageSpec): DescriptorProto {
  const nested: DescriptorProto[] = [];
  const realOneofs = spec.oneofs ?? [];
  const syntheticOneofs: string[] = [];
  const fields: FieldDescriptorProto[] = spec.fields.map((f, i) => {
    const options = create(FieldOptionsSchema);
    if (f.rules !== undefined) setExtension(options, rules, createRules(f.rules));
    const field = {
      name: f.name,
      jsonName: camel(f.name),
      number: i + 1,
      label: f.repeated || f.mapKey !== undefined ? FieldDescriptorProto_Label.REPEATED : FieldDescriptorProto_Label.OPTIONAL,
      type: f.type,
      typeName: f.typeName ?? "",
      options,
    } as Record<string, unknown>;
    if (f.mapKey !== undefined) {
      const entryName = `${upperCamel(f.name)}Entry`;
      nested.push({
        name: entryName,
        field: [
          { name: "key", jsonName: "key", number: 1, label: FieldDescriptorProto_Label.OPTIONAL, type: f.mapKey },
          { name: "value", jsonName: "value", number: 2, label: FieldDescriptorProto_Label.OPTIONAL, type: f.type, typeName: f.typeName ?? "" },
        ],
        options: { mapEntry: true },
      } as unknown as DescriptorProto);
      field.type = T.MESSAGE;
      field.typeName = `.${PKG}.${spec.name}.${entryName}`;
    }
    if (f.oneof !== undefined) field.oneofIndex = f.oneof;
    if (f.optional) {
      field.proto3Optional = true;
      field.oneofIndex = realOneofs.length + syntheticOneofs.length;
      syntheticOneofs.push(`_${f.name}`);
    }
    return field as unknown as FieldDescriptorProto;
  });
  const oneofDecl = [
    ...realOneofs.map((o) => {
      const options = create(OneofOptionsSchema);
      if (o.required) setExtension(options, required, true);
      return { name: o.name, options };
    }),
    ...syntheticOneofs.map((name) => ({ name })),
  ];
  const options = create(MessageOptionsSchema);
  if (spec.disabled) setExtension(options, disabled, true);
  if (spec.ignored) options.$unknown = unknownTrue(1072);
  return { name: spec.name, field: fields, nestedType: nested, oneofDecl, options } as unknown as DescriptorProto;
}

const deps: DescFile[] = [
  file_validate_validate,
  file_google_protobuf_any,
  file_google_protobuf_duration,
  file_google_protobuf_timestamp,
  file_google_protobuf_wrappers,
];

let counter = 0;

/** Builds one file holding the given messages plus `enum Color { COLOR_UNSET = 0; RED = 1; GREEN = 2; }`. */
export function buildFile(messages: MessageSpec[]): { file: FileRegistry; registry: Registry; msg: (name: string) => DescMessage } {
  const fdp = create(FileDescriptorProtoSchema, {
    name: `sbtest/t${counter++}.proto`,
    package: PKG,
    syntax: "proto3",
    dependency: deps.map((d) => d.proto.name),
    enumType: [{ name: "Color", value: [{ name: "COLOR_UNSET", number: 0 }, { name: "RED", number: 1 }, { name: "GREEN", number: 2 }] }],
    messageType: messages.map(buildMessage),
  });
  const file = createFileRegistry(fdp, (name) => deps.find((d) => d.proto.name === name));
  const registry = createRegistry(file);
  return {
    file,
    registry,
    msg: (name: string) => {
      const d = file.getMessage(`${PKG}.${name}`);
      if (d === undefined) throw new Error(`no message ${name}`);
      return d;
    },
  };
}

/** One message `M` with a single field `f` (plus any extra message types). */
export function single(field: Omit<FieldSpec, "name">, extra: MessageSpec[] = []): { desc: DescMessage; registry: Registry; msg: (name: string) => DescMessage } {
  const b = buildFile([{ name: "M", fields: [{ name: "f", ...field }] }, ...extra]);
  return { desc: b.msg("M"), registry: b.registry, msg: b.msg };
}
