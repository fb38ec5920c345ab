import {
  create,
  createFileRegistry,
  toBinary,
  type DescField,
  type DescFile,
  type DescMessage,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  file_google_protobuf_struct,
  file_google_protobuf_wrappers,
  FileDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { describe, expect, it } from "vitest";
import { ClusterSchema } from "../../src/gen/envoy/config/cluster/v3/cluster_pb.ts";
import { messageBinary, messageField } from "../../src/xds/message-writer.ts";
import { seededRandom } from "../support/seeded-random.ts";

/**
 * The compiled writer must give toBinary's bytes for any message: versions are
 * hashes of them. Translation's own resources are checked in
 * resource-binary.test.ts; here a test type with every kind of field, filled
 * with random values (zeros, negatives, long and non-ASCII strings, deep
 * nesting among them), is written both ways.
 */

const T = FieldDescriptorProto_Type;
const { OPTIONAL, REPEATED, REQUIRED } = FieldDescriptorProto_Label;

/** A message type and a field, as FileDescriptorProto's init shape takes them. */
type MessageTypeInit = NonNullable<MessageInitShape<typeof FileDescriptorProtoSchema>["messageType"]>[number];
type FieldInit = NonNullable<MessageTypeInit["field"]>[number];

function field(name: string, number: number, type: FieldDescriptorProto_Type, extra: Record<string, unknown> = {}): FieldInit {
  return { name, number, type, label: OPTIONAL, jsonName: name, ...extra } as FieldInit;
}

function mapEntry(name: string, key: FieldDescriptorProto_Type, value: FieldDescriptorProto_Type, valueType?: string): MessageTypeInit {
  return {
    name,
    field: [field("key", 1, key), field("value", 2, value, valueType ? { typeName: valueType } : {})],
    options: { mapEntry: true },
  };
}

const proto3 = create(FileDescriptorProtoSchema, {
  name: "signalbox_test/all.proto",
  package: "signalbox_test",
  syntax: "proto3",
  dependency: ["google/protobuf/wrappers.proto", "google/protobuf/struct.proto"],
  enumType: [{ name: "Color", value: [{ name: "COLOR_NONE", number: 0 }, { name: "RED", number: 1 }, { name: "MINUS", number: -3 }] }],
  messageType: [
    {
      name: "All",
      field: [
        field("d", 1, T.DOUBLE),
        field("f", 2, T.FLOAT),
        field("i64", 3, T.INT64),
        field("u64", 4, T.UINT64),
        field("i32", 5, T.INT32),
        field("fx64", 6, T.FIXED64),
        field("fx32", 7, T.FIXED32),
        field("b", 8, T.BOOL),
        field("s", 9, T.STRING),
        field("child", 10, T.MESSAGE, { typeName: ".signalbox_test.All" }),
        field("by", 12, T.BYTES),
        field("u32", 13, T.UINT32),
        field("e", 14, T.ENUM, { typeName: ".signalbox_test.Color" }),
        field("sfx32", 15, T.SFIXED32),
        field("sfx64", 16, T.SFIXED64),
        field("si32", 17, T.SINT32),
        field("si64", 18, T.SINT64),
        field("ri32", 20, T.INT32, { label: REPEATED }),
        field("rs", 21, T.STRING, { label: REPEATED }),
        field("rc", 22, T.MESSAGE, { label: REPEATED, typeName: ".signalbox_test.All" }),
        field("re", 23, T.ENUM, { label: REPEATED, typeName: ".signalbox_test.Color" }),
        field("rd", 24, T.DOUBLE, { label: REPEATED }),
        field("rsi", 25, T.SINT32, { label: REPEATED, options: { packed: false } }),
        field("ms", 30, T.MESSAGE, { label: REPEATED, typeName: ".signalbox_test.All.MsEntry" }),
        field("mi", 31, T.MESSAGE, { label: REPEATED, typeName: ".signalbox_test.All.MiEntry" }),
        field("mb", 32, T.MESSAGE, { label: REPEATED, typeName: ".signalbox_test.All.MbEntry" }),
        field("me", 33, T.MESSAGE, { label: REPEATED, typeName: ".signalbox_test.All.MeEntry" }),
        field("os", 40, T.STRING, { oneofIndex: 0 }),
        field("oc", 41, T.MESSAGE, { oneofIndex: 0, typeName: ".signalbox_test.All" }),
        field("ow", 42, T.MESSAGE, { oneofIndex: 0, typeName: ".google.protobuf.UInt32Value" }),
        field("w32", 50, T.MESSAGE, { typeName: ".google.protobuf.UInt32Value" }),
        field("ws", 51, T.MESSAGE, { typeName: ".google.protobuf.StringValue" }),
        field("w64", 52, T.MESSAGE, { typeName: ".google.protobuf.Int64Value" }),
        field("wb", 53, T.MESSAGE, { typeName: ".google.protobuf.BoolValue" }),
        field("wd", 54, T.MESSAGE, { typeName: ".google.protobuf.DoubleValue" }),
        field("oi", 60, T.INT32, { oneofIndex: 1, proto3Optional: true }),
        field("ostr", 61, T.STRING, { oneofIndex: 2, proto3Optional: true }),
        field("last", 536_870_911, T.INT32),
      ],
      oneofDecl: [{ name: "choice" }, { name: "_oi" }, { name: "_ostr" }],
      nestedType: [
        mapEntry("MsEntry", T.STRING, T.INT32),
        mapEntry("MiEntry", T.INT32, T.STRING),
        mapEntry("MbEntry", T.BOOL, T.MESSAGE, ".signalbox_test.All"),
        mapEntry("MeEntry", T.STRING, T.ENUM, ".signalbox_test.Color"),
      ],
    },
    {
      // google.protobuf.Struct is held as JSON, and 64-bit map keys as strings: left to toBinary.
      name: "Left",
      field: [
        field("name", 1, T.STRING),
        field("st", 2, T.MESSAGE, { typeName: ".google.protobuf.Struct" }),
        field("m64", 3, T.MESSAGE, { label: REPEATED, typeName: ".signalbox_test.Left.M64Entry" }),
        field("all", 4, T.MESSAGE, { typeName: ".signalbox_test.All" }),
      ],
      nestedType: [mapEntry("M64Entry", T.INT64, T.STRING)],
    },
    { name: "Holder", field: [field("left", 1, T.MESSAGE, { typeName: ".signalbox_test.Left" }), field("n", 2, T.UINT32)] },
  ],
});

const proto2 = create(FileDescriptorProtoSchema, {
  name: "signalbox_test/legacy.proto",
  package: "signalbox_test",
  syntax: "proto2",
  messageType: [
    {
      name: "Legacy",
      field: [
        field("r", 1, T.INT32, { label: REQUIRED }),
        field("o", 2, T.INT32, { defaultValue: "5" }),
        field("s", 3, T.STRING),
      ],
    },
  ],
});

const DEPENDENCIES: Record<string, DescFile> = {
  "google/protobuf/wrappers.proto": file_google_protobuf_wrappers,
  "google/protobuf/struct.proto": file_google_protobuf_struct,
};
const registries = [createFileRegistry(proto3, (name) => DEPENDENCIES[name]), createFileRegistry(proto2, () => undefined)];

function messageType(name: string): DescMessage {
  const desc = registries.map((registry) => registry.getMessage(`signalbox_test.${name}`)).find((found) => found !== undefined);
  if (!desc) throw new Error(`no ${name}`);
  return desc;
}

const All = messageType("All");
const Left = messageType("Left");
const Holder = messageType("Holder");
const Legacy = messageType("Legacy");

const STRINGS = ["", "a", "outbound|9090||checkout", "ü", "日本語", "x".repeat(127), "y".repeat(128), "z".repeat(20_000), "\ud800 lone surrogate", "emoji 🚀"];

/** A value of a field's scalar or enum type (of its elements, for lists and maps). */
function scalarValue(field: DescField, pick: () => number): unknown {
  const isEnum = field.fieldKind === "enum" || (field.fieldKind === "list" && field.listKind === "enum") || (field.fieldKind === "map" && field.mapKind === "enum");
  const scalar = isEnum ? "enum" : field.scalar;
  const chance = pick();
  switch (scalar) {
    case "enum":
      return [0, 1, -3][Math.floor(chance * 3)];
    case 1: // double
    case 2: // float
      return [0, -0, 1.5, -2.25, 1e30, Number.NaN, Number.POSITIVE_INFINITY, 3][Math.floor(chance * 8)];
    case 3: // int64
    case 16: // sfixed64
    case 18: // sint64
      return [0n, 1n, -1n, 127n, 2n ** 40n, -(2n ** 63n), 2n ** 31n - 1n][Math.floor(chance * 7)];
    case 4: // uint64
    case 6: // fixed64
      return [0n, 1n, 128n, 2n ** 31n, 2n ** 64n - 1n][Math.floor(chance * 5)];
    case 5: // int32
    case 15: // sfixed32
    case 17: // sint32
      return [0, 1, -1, 127, 128, 300_000, -2_147_483_648, 2_147_483_647][Math.floor(chance * 8)];
    case 7: // fixed32
    case 13: // uint32
      return [0, 1, 127, 128, 16_384, 4_294_967_295][Math.floor(chance * 6)];
    case 8: // bool
      return chance < 0.5;
    case 9: // string
      return STRINGS[Math.floor(chance * STRINGS.length)];
    case 12: // bytes
      return [new Uint8Array(0), new Uint8Array([0, 255]), new Uint8Array(300).fill(7)][Math.floor(chance * 3)];
    default:
      throw new Error(`no values for ${String(scalar)}`);
  }
}

/** A random All: each field set with some chance, sub-messages down to `depth`. */
function randomAll(pick: () => number, depth: number): MessageShape<DescMessage> {
  const message = create(All) as unknown as Record<string, unknown>;
  const sub = () => (depth > 0 ? randomAll(pick, depth - 1) : create(All));
  for (const f of All.fields) {
    if (pick() < 0.4) continue;
    const count = Math.floor(pick() * 4);
    let value: unknown;
    switch (f.fieldKind) {
      case "scalar":
      case "enum":
        value = scalarValue(f, pick);
        break;
      case "message":
        value = f.message.typeName.startsWith("google.protobuf.") ? scalarValue(f.message.fields[0] as DescField, pick) : sub();
        break;
      case "list":
        value = Array.from({ length: count }, () => (f.listKind === "message" ? sub() : scalarValue(f, pick)));
        break;
      case "map": {
        const record: Record<string, unknown> = {};
        for (let i = 0; i < count; i++) {
          const key = f.mapKey === 8 ? String(pick() < 0.5) : f.mapKey === 9 ? (STRINGS[Math.floor(pick() * 4)] as string) + i : String(Math.floor(pick() * 200) - 100);
          record[key] = f.mapKind === "message" ? sub() : scalarValue(f, pick);
        }
        value = record;
        break;
      }
    }
    if (f.oneof) {
      if (f.oneof.localName === "choice") {
        if (f.fieldKind === "message" && f.message.typeName === "google.protobuf.UInt32Value") value = create(f.message, { value: 7 });
        message[f.oneof.localName] = { case: f.localName, value };
      } else {
        message[f.localName] = value;
      }
      continue;
    }
    message[f.localName] = value;
  }
  return message as unknown as MessageShape<DescMessage>;
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex");
}

describe("the compiled message writer", () => {
  it("writes what toBinary writes, for random messages with every kind of field", () => {
    const pick = seededRandom(20261122);
    for (let i = 0; i < 400; i++) {
      const message = randomAll(pick, i % 3);
      expect(hex(messageBinary(All, message)), `message ${i}`).toBe(hex(toBinary(All, message)));
    }
  });

  it("writes unknown fields last, as toBinary does", () => {
    const message = create(All, { s: "known", i32: 3 }) as unknown as MessageShape<DescMessage> & { $unknown?: unknown };
    message.$unknown = [
      { no: 1000, wireType: 0, data: new Uint8Array([0x96, 0x01]) },
      { no: 2, wireType: 2, data: new Uint8Array([0x02, 0x61, 0x62]) },
    ];
    expect(hex(messageBinary(All, message))).toBe(hex(toBinary(All, message)));
  });

  it("leaves types it does not compile to toBinary, inside compiled ones", () => {
    const left = create(Left, {
      name: "metadata",
      st: { a: 1, b: [true, null, "x"], c: { nested: "yes" } },
      m64: { "-5": "minus five", "9007199254740993": "large" },
      all: randomAll(seededRandom(7), 1),
    });
    const holder = create(Holder, { left, n: 300 });
    expect(hex(messageBinary(Holder, holder))).toBe(hex(toBinary(Holder, holder)));
  });

  it("keeps proto2 presence: a default left unset is not written, a required field missing is an error", () => {
    const set = create(Legacy, { r: -1, o: 5, s: "" });
    expect(hex(messageBinary(Legacy, set))).toBe(hex(toBinary(Legacy, set)));
    const unset = create(Legacy, { r: 0 });
    expect(hex(messageBinary(Legacy, unset))).toBe(hex(toBinary(Legacy, unset)));
    expect(() => messageBinary(Legacy, create(Legacy))).toThrow(/required field not set/);
  });

  it("refuses values toBinary refuses, rather than writing something else", () => {
    for (const bad of [{ i32: 1.5 }, { u32: -1 }, { f: 1e39 }, { i32: 2 ** 31 }]) {
      const message = create(All) as unknown as Record<string, unknown>;
      Object.assign(message, bad);
      const typed = message as unknown as MessageShape<DescMessage>;
      expect(() => toBinary(All, typed), JSON.stringify(bad)).toThrow();
      expect(() => messageBinary(All, typed), JSON.stringify(bad)).toThrow();
    }
    expect(() => messageBinary(All, create(Legacy) as unknown as MessageShape<DescMessage>)).toThrow(/cannot write signalbox_test.Legacy/);
  });

  it("wraps a message in an Any's value field, in one buffer", () => {
    const cluster = create(ClusterSchema, { name: "outbound|svc", connectTimeout: { seconds: 5n } });
    const head = new Uint8Array([0x0a, 0x03, 0x61, 0x62, 0x63]); // type_url "abc"
    const valueField = (value: Uint8Array) => hex(new BinaryWriter().tag(2, WireType.LengthDelimited).bytes(value).finish());
    const valueHead = Uint8Array.of(...head, 0x12); // ... then the value field's (2) tag
    expect(hex(messageField(valueHead, ClusterSchema, cluster))).toBe(hex(head) + valueField(toBinary(ClusterSchema, cluster)));
    // A value over 127 bytes: a two-byte length.
    const long = create(ClusterSchema, { name: "n".repeat(300) });
    expect(hex(messageField(valueHead, ClusterSchema, long))).toBe(hex(head) + valueField(toBinary(ClusterSchema, long)));
  });
});
