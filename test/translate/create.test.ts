import { create as createGeneric, equals, ScalarType, toBinary, type DescField, type DescMessage } from "@bufbuild/protobuf";
import { isWrapperDesc } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { create } from "../../src/translate/create.ts";
import { ClusterSchema } from "../../src/gen/envoy/config/cluster/v3/cluster_pb.ts";
import { envoyRegistry } from "../../src/validate/registry.ts";

// The compiled create must build what protobuf-es's create builds, for every
// message type Signalbox can produce, from an empty init and from one that
// sets every field (nested messages as plain objects, bytes as arrays,
// wrappers unwrapped, Struct as JSON), so each conversion path is taken.

function scalarSample(field: DescField & { scalar: ScalarType }, longAsString: boolean): unknown {
  switch (field.scalar) {
    case ScalarType.STRING:
      return "s";
    case ScalarType.BOOL:
      return true;
    case ScalarType.BYTES:
      return [1, 2, 3];
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return 1.5;
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return longAsString ? "7" : 7n;
    default:
      return 7;
  }
}

function messageSample(desc: DescMessage, depth: number): Record<string, unknown> {
  if (depth > 2) return {};
  const init: Record<string, unknown> = {};
  for (const member of desc.members) {
    if (member.kind === "oneof") {
      const field = member.fields[member.fields.length - 1];
      if (field) init[member.localName] = { case: field.localName, value: fieldValue(field, depth, true) };
      continue;
    }
    init[member.localName] = fieldValue(member, depth, false);
  }
  return init;
}

function fieldValue(field: DescField, depth: number, inOneof: boolean): unknown {
  switch (field.fieldKind) {
    case "scalar":
      return scalarSample(field, field.longAsString);
    case "enum":
      return field.enum.values[field.enum.values.length - 1]?.number ?? 0;
    case "message":
      if (!inOneof && isWrapperDesc(field.message)) return scalarSample(field.message.fields[0] as DescField & { scalar: ScalarType }, false);
      if (field.message.typeName === "google.protobuf.Struct" && field.parent.typeName !== "google.protobuf.Value") return { a: 1, b: ["x"] };
      return messageSample(field.message, depth + 1);
    case "list":
      if (field.listKind === "message") return [messageSample(field.message, depth + 1), {}];
      if (field.listKind === "enum") return [field.enum.values[0]?.number ?? 0];
      return [scalarSample(field as DescField & { scalar: ScalarType }, field.longAsString)];
    case "map": {
      const key = field.mapKey === ScalarType.STRING ? "k" : field.mapKey === ScalarType.BOOL ? "true" : "1";
      if (field.mapKind === "message") return { [key]: messageSample(field.message, depth + 1) };
      if (field.mapKind === "enum") return { [key]: field.enum.values[0]?.number ?? 0 };
      return { [key]: scalarSample(field as DescField & { scalar: ScalarType }, false) };
    }
  }
}

/** The encoding as hex, or the error protobuf-es gives (proto2 required fields left unset). */
function binaryOrError(desc: DescMessage, message: Parameters<typeof toBinary>[1]): string {
  try {
    return Buffer.from(toBinary(desc, message)).toString("hex");
  } catch (error) {
    return `error: ${(error as Error).message}`;
  }
}

const messageTypes: DescMessage[] = [];
for (const type of envoyRegistry()) if (type.kind === "message") messageTypes.push(type);

describe("compiled create", () => {
  it("covers the registry's message types", () => {
    expect(messageTypes.length).toBeGreaterThan(500);
  });

  it("builds what protobuf-es builds, from no init and from an init setting every field", () => {
    const mismatches: string[] = [];
    for (const desc of messageTypes) {
      for (const init of [undefined, {}, messageSample(desc, 0)]) {
        const expected = createGeneric(desc, init);
        const actual = create(desc, init);
        const same =
          actual.$typeName === expected.$typeName &&
          equals(desc, actual, expected) &&
          binaryOrError(desc, actual) === binaryOrError(desc, expected);
        if (!same) mismatches.push(`${desc.typeName} (${init === undefined ? "no init" : Object.keys(init).length + " fields"})`);
        else expect(actual, desc.typeName).toEqual(expected);
      }
    }
    expect(mismatches).toEqual([]);
  });

  it("returns a message of the type as it is, and gives every message of a type every field", () => {
    const cluster = create(ClusterSchema, { name: "a" });
    expect(create(ClusterSchema, cluster)).toBe(cluster);
    const bare = create(ClusterSchema);
    // Unset message fields are own properties holding undefined: one shape per type.
    expect(Object.keys(cluster)).toEqual(Object.keys(bare));
    expect(Object.keys(bare)).toContain("edsClusterConfig");
    expect(bare.edsClusterConfig).toBeUndefined();
    // Unset lists, maps and oneofs share one frozen empty value: changing one in place throws.
    expect(create(ClusterSchema).healthChecks).toBe(bare.healthChecks);
    expect(() => (bare.healthChecks as unknown[]).push(1)).toThrow(TypeError);
    expect(() => ((bare.typedExtensionProtocolOptions as Record<string, unknown>).x = 1)).toThrow(TypeError);
    expect(() => ((bare.clusterDiscoveryType as { case: unknown }).case = "type")).toThrow(TypeError);
    expect(bare.healthChecks).toEqual([]);
    expect(bare.clusterDiscoveryType).toEqual({ case: undefined });
  });

  it("gives a set list, map or oneof its own value, even an empty one", () => {
    const bare = create(ClusterSchema);
    const set = create(ClusterSchema, { healthChecks: [], typedExtensionProtocolOptions: {}, clusterDiscoveryType: { case: "type", value: 3 } });
    for (const value of [set.healthChecks, set.typedExtensionProtocolOptions, set.clusterDiscoveryType]) expect(Object.isFrozen(value)).toBe(false);
    expect(set.healthChecks).not.toBe(bare.healthChecks);
    expect(set.typedExtensionProtocolOptions).not.toBe(bare.typedExtensionProtocolOptions);
    expect(set.clusterDiscoveryType).toEqual({ case: "type", value: 3 });
  });
});
