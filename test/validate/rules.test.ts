// Every PGV rule family, on small message types built at runtime (see fixtures.ts):
// each rule rejects a bad value with the expected rule name and path, and accepts
// good values. Envoy-specific behaviour is covered in envoy.test.ts.
import { create, type DescMessage, type Registry } from "@bufbuild/protobuf";
import { anyPack, durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { KnownRegex } from "../../src/gen/validate/validate_pb.ts";
import { validateMessage, type Violation } from "../../src/validate/pgv.ts";
import { buildFile, single, T, unknownTrue, type FieldSpec, type MessageSpec, type RulesInit } from "./fixtures.ts";

interface Case {
  name: string;
  field: Omit<FieldSpec, "name">;
  extra?: MessageSpec[];
  /** Values for field `f` that must pass. */
  good: unknown[];
  /** [value, expected rule, expected path (default "f"), message pattern]. */
  bad: [unknown, string, string?, RegExp?][];
  /** Also pass the file's registry (for Any payloads). */
  withRegistry?: boolean;
}

function run(desc: DescMessage, value: unknown, registry?: Registry): Violation[] {
  const init: Record<string, unknown> = value === undefined ? {} : { f: value };
  return validateMessage(desc, create(desc, init), registry);
}

function table(cases: Case[]): void {
  for (const c of cases) {
    it(c.name, () => {
      const { desc, registry } = single(c.field, c.extra);
      const reg = c.withRegistry ? registry : undefined;
      for (const g of c.good) {
        expect(run(desc, g, reg), `good value ${String(g)}`).toEqual([]);
      }
      for (const [value, rule, path = "f", message] of c.bad) {
        const vs = run(desc, value, reg);
        const hit = vs.find((v) => v.rule === rule && v.path === path);
        expect(hit, `bad value ${String(value)} should break ${rule} at ${path}; got ${JSON.stringify(vs)}`).toBeDefined();
        if (message !== undefined) expect(hit!.message).toMatch(message);
      }
    });
  }
}

const numericTypes = [
  ["float", T.FLOAT, false],
  ["double", T.DOUBLE, false],
  ["int32", T.INT32, false],
  ["int64", T.INT64, true],
  ["uint32", T.UINT32, false],
  ["uint64", T.UINT64, true],
  ["sint32", T.SINT32, false],
  ["sint64", T.SINT64, true],
  ["fixed32", T.FIXED32, false],
  ["fixed64", T.FIXED64, true],
  ["sfixed32", T.SFIXED32, false],
  ["sfixed64", T.SFIXED64, true],
] as const;

describe("numeric rules, every numeric type", () => {
  for (const [kind, type, big] of numericTypes) {
    const n = (x: number): number | bigint => (big ? BigInt(x) : x);
    const r = (value: Record<string, unknown>): RulesInit => {
      const v: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(value)) v[k] = Array.isArray(x) ? x.map((y: number) => n(y)) : n(x as number);
      return { type: { case: kind, value: v } } as RulesInit;
    };
    describe(kind, () => {
      table([
        { name: "const", field: { type, rules: r({ const: 5 }) }, good: [n(5)], bad: [[n(4), `${kind}.const`, "f", /must equal 5, got 4/]] },
        {
          name: "gt + lt (inside range)",
          field: { type, rules: r({ gt: 10, lt: 20 }) },
          good: [n(11), n(19)],
          bad: [[n(10), `${kind}.gt`, "f", /inside range \(10, 20\), got 10/], [n(20), `${kind}.lt`], [n(0), `${kind}.gt`]],
        },
        {
          name: "gte + lte (inclusive range)",
          field: { type, rules: r({ gte: 10, lte: 20 }) },
          good: [n(10), n(20)],
          bad: [[n(9), `${kind}.gte`, "f", /inside range \[10, 20\]/], [n(21), `${kind}.lte`]],
        },
        {
          name: "lt < gt (exclusive range: value must be outside)",
          field: { type, rules: r({ lt: 10, gt: 20 }) },
          good: [n(9), n(21), n(0)],
          bad: [[n(10), `${kind}.lt_gt`, "f", /outside range \[10, 20\], got 10/], [n(15), `${kind}.lt_gt`], [n(20), `${kind}.lt_gt`]],
        },
        {
          name: "lte < gte (exclusive range, inclusive ends)",
          field: { type, rules: r({ lte: 10, gte: 20 }) },
          good: [n(10), n(20), n(5), n(25)],
          bad: [[n(11), `${kind}.lte_gte`, "f", /outside range \(10, 20\)/], [n(19), `${kind}.lte_gte`]],
        },
        {
          name: "gte + lt (half-open range)",
          field: { type, rules: r({ gte: 10, lt: 20 }) },
          good: [n(10), n(19)],
          bad: [[n(20), `${kind}.lt`, "f", /\[10, 20\)/], [n(9), `${kind}.gte`]],
        },
        { name: "gt alone", field: { type, rules: r({ gt: 0 }) }, good: [n(1)], bad: [[n(0), `${kind}.gt`, "f", /^value must be greater than 0, got 0$/]] },
        { name: "lte alone", field: { type, rules: r({ lte: 7 }) }, good: [n(7), n(0)], bad: [[n(8), `${kind}.lte`, "f", /less than or equal to 7, got 8/]] },
        { name: "in", field: { type, rules: r({ in: [1, 2] }) }, good: [n(1), n(2)], bad: [[n(3), `${kind}.in`, "f", /one of \[1, 2\], got 3/]] },
        { name: "not_in", field: { type, rules: r({ notIn: [0] }) }, good: [n(1)], bad: [[n(0), `${kind}.not_in`]] },
      ]);
    });
  }

  table([
    {
      name: "negative bounds on signed 64-bit",
      field: { type: T.SINT64, rules: { type: { case: "sint64", value: { gt: -5n } } } },
      good: [-4n, 0n],
      bad: [[-5n, "sint64.gt", "f", /greater than -5, got -5/]],
    },
    {
      name: "uint64 beyond 2^53 compares exactly",
      field: { type: T.UINT64, rules: { type: { case: "uint64", value: { lte: 9007199254740993n } } } },
      good: [9007199254740993n],
      bad: [[9007199254740994n, "uint64.lte"]],
    },
    {
      name: "float compares the 32-bit value Envoy will see (0.1 passes gte 0.1f)",
      field: { type: T.FLOAT, rules: { type: { case: "float", value: { gte: 0.1 } } } },
      good: [0.1, 1],
      bad: [[0.09, "float.gte"]],
    },
    {
      name: "NaN never satisfies a range",
      field: { type: T.DOUBLE, rules: { type: { case: "double", value: { gt: 0 } } } },
      good: [0.5],
      bad: [[Number.NaN, "double", "f", /got NaN/]],
    },
    {
      name: "ignore_empty (newer validate.proto, read from unknown field 8) skips zero",
      field: { type: T.UINT32, rules: { type: { case: "uint32", value: { gte: 5, $unknown: unknownTrue(8) } } } as RulesInit },
      good: [0, 5],
      bad: [[3, "uint32.gte"]],
    },
    {
      name: "proto3 scalar zero value is still checked",
      field: { type: T.UINT32, rules: { type: { case: "uint32", value: { gt: 0 } } } },
      good: [1],
      bad: [[undefined, "uint32.gt"], [0, "uint32.gt"]],
    },
    {
      name: "proto3 optional scalar: unset is skipped, set zero is checked",
      field: { type: T.UINT32, optional: true, rules: { type: { case: "uint32", value: { gt: 0 } } } },
      good: [undefined, 3],
      bad: [[0, "uint32.gt"]],
    },
    {
      name: "bool const",
      field: { type: T.BOOL, rules: { type: { case: "bool", value: { const: true } } } },
      good: [true],
      bad: [[false, "bool.const", "f", /must equal true, got false/]],
    },
  ]);
});

const str = (value: Record<string, unknown>): RulesInit => ({ type: { case: "string", value } }) as RulesInit;
const wk = (c: string, v: unknown = true): RulesInit => str({ wellKnown: { case: c, value: v } });

describe("string rules", () => {
  table([
    { name: "const", field: { type: T.STRING, rules: str({ const: "a" }) }, good: ["a"], bad: [["b", "string.const", "f", /must equal "a", got "b"/]] },
    {
      name: "len counts code points, not UTF-16 units or bytes",
      field: { type: T.STRING, rules: str({ len: 3n }) },
      good: ["abc", "héé", "😀😀😀"],
      bad: [["ab", "string.len", "f", /exactly 3 characters, got 2/], ["😀😀😀😀", "string.len"]],
    },
    {
      name: "min_len / max_len",
      field: { type: T.STRING, rules: str({ minLen: 2n, maxLen: 3n }) },
      good: ["ab", "abc", "😀😀"],
      bad: [["a", "string.min_len"], ["", "string.min_len"], ["abcd", "string.max_len", "f", /at most 3 characters, got 4/]],
    },
    {
      name: "len_bytes counts UTF-8 bytes",
      field: { type: T.STRING, rules: str({ lenBytes: 4n }) },
      good: ["abcd", "😀", "éé"],
      bad: [["abc", "string.len_bytes", "f", /exactly 4 bytes, got 3/]],
    },
    {
      name: "min_bytes / max_bytes",
      field: { type: T.STRING, rules: str({ minBytes: 2n, maxBytes: 3n }) },
      good: ["é", "abc"],
      bad: [["a", "string.min_bytes"], ["éé", "string.max_bytes", "f", /at most 3 bytes, got 4/]],
    },
    {
      name: "pattern",
      field: { type: T.STRING, rules: str({ pattern: "^[a-z]+$" }) },
      good: ["abc"],
      bad: [["ab1", "string.pattern", "f", /must match the regular expression "\^\[a-z\]\+\$", got "ab1"/]],
    },
    {
      name: "pattern with RE2-only syntax: (?i) flags and \\z",
      field: { type: T.STRING, rules: str({ pattern: "(?i)^abc\\z" }) },
      good: ["ABC", "abc"],
      bad: [["abd", "string.pattern"], ["abc\n", "string.pattern"]],
    },
    {
      name: "pattern with a POSIX class",
      field: { type: T.STRING, rules: str({ pattern: "^[[:digit:]]+$" }) },
      good: ["0123"],
      bad: [["12a", "string.pattern"]],
    },
    {
      name: "prefix / suffix / contains / not_contains",
      field: { type: T.STRING, rules: str({ prefix: "/api", suffix: ".json", contains: "v1", notContains: ".." }) },
      good: ["/api/v1/x.json"],
      bad: [
        ["/v1/x.json", "string.prefix", "f", /must start with "\/api"/],
        ["/api/v1/x.xml", "string.suffix"],
        ["/api/v2/x.json", "string.contains"],
        ["/api/v1/../x.json", "string.not_contains"],
      ],
    },
    {
      name: "in / not_in",
      field: { type: T.STRING, rules: str({ in: ["a", "b"], notIn: ["b"] }) },
      good: ["a"],
      bad: [["c", "string.in", "f", /one of \["a", "b"\], got "c"/], ["b", "string.not_in"]],
    },
    {
      name: "email",
      field: { type: T.STRING, rules: wk("email") },
      good: ["ops@example.com", "first.last+tag@sub.example.org", "Ops Team <ops@example.com>"],
      bad: [["ops", "string.email"], ["ops@-bad.com", "string.email"], ["a b@example.com", "string.email"], ["", "string.email"]],
    },
    {
      name: "hostname",
      field: { type: T.STRING, rules: wk("hostname") },
      good: ["orders.service.consul", "localhost", "a-b.example.com.", "x1"],
      bad: [["-a.com", "string.hostname"], ["a..b", "string.hostname"], ["a_b.com", "string.hostname"], [`${"x".repeat(64)}.com`, "string.hostname"], ["", "string.hostname"]],
    },
    {
      name: "ip",
      field: { type: T.STRING, rules: wk("ip") },
      good: ["10.0.0.1", "::1", "fe80::1:2", "::ffff:192.0.2.1"],
      bad: [["10.0.0.256", "string.ip"], ["1.2.3", "string.ip"], ["::1::", "string.ip"], ["[::1]", "string.ip"], ["example.com", "string.ip"]],
    },
    {
      name: "ipv4",
      field: { type: T.STRING, rules: wk("ipv4") },
      good: ["192.168.1.1", "0.0.0.0", "255.255.255.255"],
      bad: [["::1", "string.ipv4"], ["01.2.3.4", "string.ipv4"], ["1.2.3.4.5", "string.ipv4"], ["1.2.3.", "string.ipv4"]],
    },
    {
      name: "ipv6",
      field: { type: T.STRING, rules: wk("ipv6") },
      good: ["2001:db8::8a2e:370:7334", "::", "1:2:3:4:5:6:7:8", "::ffff:192.0.2.1", "1::"],
      bad: [["1.2.3.4", "string.ipv6"], ["2001:db8:::1", "string.ipv6"], ["1:2:3:4:5:6:7:8:9", "string.ipv6"], ["fe80::1%eth0", "string.ipv6"], ["12345::", "string.ipv6"]],
    },
    {
      name: "uri (absolute)",
      field: { type: T.STRING, rules: wk("uri") },
      good: ["https://example.com/a?b=c#d", "urn:isbn:0451450523", "http://[::1]:8080/", "http://user:pw@host:1/p%20q"],
      bad: [["/relative/path", "string.uri", "f", /absolute/], ["http://exa mple.com", "string.uri"], ["http://[zz]/", "string.uri"], ["http://h/%zz", "string.uri"]],
    },
    {
      name: "uri_ref (relative allowed)",
      field: { type: T.STRING, rules: wk("uriRef") },
      good: ["/relative/path?x=1", "https://x.y", "../a", ""],
      bad: [["a b", "string.uri_ref"], ["%zz", "string.uri_ref"], ["a:b/c:d#x#y", "string.uri_ref"]],
    },
    {
      name: "address (hostname or IP)",
      field: { type: T.STRING, rules: wk("address") },
      good: ["example.com", "10.1.2.3", "::1"],
      bad: [["-bad-", "string.address"], ["exa mple", "string.address"]],
    },
    {
      name: "uuid",
      field: { type: T.STRING, rules: wk("uuid") },
      good: ["123e4567-e89b-12d3-a456-426614174000", "123E4567-E89B-12D3-A456-426614174000"],
      bad: [["123e4567e89b12d3a456426614174000", "string.uuid"], ["zzze4567-e89b-12d3-a456-426614174000", "string.uuid"]],
    },
    {
      name: "HTTP_HEADER_NAME strict (the default)",
      field: { type: T.STRING, rules: wk("wellKnownRegex", KnownRegex.HTTP_HEADER_NAME) },
      good: ["x-request-id", ":authority", "X-Custom_Header.1~"],
      bad: [
        ["x header", "string.well_known_regex", "f", /valid HTTP header name, got "x header"/],
        ["xé", "string.well_known_regex"],
        ["", "string.well_known_regex"],
        ["a:b", "string.well_known_regex"],
        ["a,b", "string.well_known_regex"],
      ],
    },
    {
      name: "HTTP_HEADER_NAME loose (strict: false) only forbids NUL, CR and LF",
      field: { type: T.STRING, rules: str({ wellKnown: { case: "wellKnownRegex", value: KnownRegex.HTTP_HEADER_NAME }, strict: false }) },
      good: ["x header", "xé", ""],
      bad: [["x\r\n", "string.well_known_regex", "f", /loose/], ["a\0", "string.well_known_regex"]],
    },
    {
      name: "HTTP_HEADER_VALUE strict allows tab, forbids other controls and DEL",
      field: { type: T.STRING, rules: wk("wellKnownRegex", KnownRegex.HTTP_HEADER_VALUE) },
      good: ["text/html; charset=utf-8", "tab\there", "", "ünïcode"],
      bad: [["a\u0001b", "string.well_known_regex"], ["a\u007fb", "string.well_known_regex"], ["a\nb", "string.well_known_regex"]],
    },
    {
      name: "HTTP_HEADER_VALUE loose",
      field: { type: T.STRING, rules: str({ wellKnown: { case: "wellKnownRegex", value: KnownRegex.HTTP_HEADER_VALUE }, strict: false }) },
      good: ["a\u0001b", "a\u007fb"],
      bad: [["a\nb", "string.well_known_regex"], ["a\rb", "string.well_known_regex"], ["a\0", "string.well_known_regex"]],
    },
    {
      name: "ignore_empty skips every rule for an empty string",
      field: { type: T.STRING, rules: str({ minLen: 3n, wellKnown: { case: "hostname", value: true }, ignoreEmpty: true }) },
      good: ["", "abc"],
      bad: [["ab", "string.min_len"]],
    },
  ]);
});

const bytes = (value: Record<string, unknown>): RulesInit => ({ type: { case: "bytes", value } }) as RulesInit;
const b = (...x: number[]): Uint8Array => new Uint8Array(x);
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

describe("bytes rules", () => {
  table([
    { name: "const", field: { type: T.BYTES, rules: bytes({ const: b(1, 2) }) }, good: [b(1, 2)], bad: [[b(1), "bytes.const", "f", /must equal 0x0102, got 0x01/], [b(1, 3), "bytes.const"]] },
    { name: "len", field: { type: T.BYTES, rules: bytes({ len: 4n }) }, good: [b(1, 2, 3, 4)], bad: [[b(1), "bytes.len"]] },
    {
      name: "min_len / max_len",
      field: { type: T.BYTES, rules: bytes({ minLen: 2n, maxLen: 3n }) },
      good: [b(1, 2), b(1, 2, 3)],
      bad: [[b(), "bytes.min_len"], [b(1, 2, 3, 4), "bytes.max_len"]],
    },
    { name: "pattern (on the UTF-8 text)", field: { type: T.BYTES, rules: bytes({ pattern: "^ab+$" }) }, good: [utf8("abb")], bad: [[utf8("ba"), "bytes.pattern"]] },
    {
      name: "prefix / suffix / contains",
      field: { type: T.BYTES, rules: bytes({ prefix: b(0xca, 0xfe), suffix: b(0xff), contains: b(7, 8) }) },
      good: [b(0xca, 0xfe, 7, 8, 0xff)],
      bad: [[b(0xca, 7, 8, 0xff), "bytes.prefix"], [b(0xca, 0xfe, 7, 8), "bytes.suffix"], [b(0xca, 0xfe, 7, 0xff), "bytes.contains"]],
    },
    {
      name: "in / not_in",
      field: { type: T.BYTES, rules: bytes({ in: [b(1), b(2)], notIn: [b(2)] }) },
      good: [b(1)],
      bad: [[b(3), "bytes.in"], [b(2), "bytes.not_in"]],
    },
    { name: "ip (4 or 16 bytes)", field: { type: T.BYTES, rules: bytes({ wellKnown: { case: "ip", value: true } }) }, good: [new Uint8Array(4), new Uint8Array(16)], bad: [[new Uint8Array(5), "bytes.ip", "f", /got 5 bytes/]] },
    { name: "ipv4", field: { type: T.BYTES, rules: bytes({ wellKnown: { case: "ipv4", value: true } }) }, good: [new Uint8Array(4)], bad: [[new Uint8Array(16), "bytes.ipv4"]] },
    { name: "ipv6", field: { type: T.BYTES, rules: bytes({ wellKnown: { case: "ipv6", value: true } }) }, good: [new Uint8Array(16)], bad: [[new Uint8Array(4), "bytes.ipv6"]] },
    {
      name: "ignore_empty (unknown field 14 in this validate.proto)",
      field: { type: T.BYTES, rules: bytes({ minLen: 2n, $unknown: unknownTrue(14) }) },
      good: [b(), b(1, 2)],
      bad: [[b(1), "bytes.min_len"]],
    },
  ]);
});

describe("enum rules", () => {
  const en = (value: Record<string, unknown>): RulesInit => ({ type: { case: "enum", value } }) as RulesInit;
  const color = { type: T.ENUM, typeName: ".sbtest.Color" };
  table([
    { name: "const", field: { ...color, rules: en({ const: 1 }) }, good: [1], bad: [[2, "enum.const", "f", /must equal RED \(1\), got GREEN \(2\)/]] },
    { name: "defined_only", field: { ...color, rules: en({ definedOnly: true }) }, good: [0, 2], bad: [[7, "enum.defined_only", "f", /defined values of enum sbtest\.Color, got 7/]] },
    { name: "in", field: { ...color, rules: en({ in: [1, 2] }) }, good: [1, 2], bad: [[0, "enum.in"]] },
    { name: "not_in", field: { ...color, rules: en({ notIn: [0] }) }, good: [1], bad: [[0, "enum.not_in", "f", /COLOR_UNSET \(0\)/]] },
  ]);
});

const inner: MessageSpec = { name: "Inner", fields: [{ name: "name", type: T.STRING, rules: str({ minLen: 1n }) }] };
const disabledInner: MessageSpec = { ...inner, name: "DisabledInner", disabled: true };
const ignoredInner: MessageSpec = { ...inner, name: "IgnoredInner", ignored: true };
const innerField = { type: T.MESSAGE, typeName: ".sbtest.Inner" };

describe("message rules and recursion", () => {
  table([
    {
      name: "required",
      field: { ...innerField, rules: { message: { required: true } } },
      extra: [inner],
      good: [{ name: "x" }],
      bad: [[undefined, "message.required", "f", /value is required/], [{ name: "" }, "string.min_len", "f.name"]],
    },
    { name: "nested messages are validated without any rule on the field", field: innerField, extra: [inner], good: [undefined, { name: "x" }], bad: [[{ name: "" }, "string.min_len", "f.name"]] },
    { name: "skip", field: { ...innerField, rules: { message: { skip: true } } }, extra: [inner], good: [{ name: "" }], bad: [] },
    { name: "(validate.disabled) message", field: { type: T.MESSAGE, typeName: ".sbtest.DisabledInner" }, extra: [disabledInner], good: [{ name: "" }], bad: [] },
    { name: "(validate.ignored) message (unknown option 1072)", field: { type: T.MESSAGE, typeName: ".sbtest.IgnoredInner" }, extra: [ignoredInner], good: [{ name: "" }], bad: [] },
  ]);

  it("a (validate.disabled) / (validate.ignored) message validated directly has no violations", () => {
    const { msg } = buildFile([inner, disabledInner, ignoredInner]);
    for (const name of ["DisabledInner", "IgnoredInner"]) {
      expect(validateMessage(msg(name), create(msg(name), { name: "" }))).toEqual([]);
    }
    expect(validateMessage(msg("Inner"), create(msg("Inner"), { name: "" }))).toHaveLength(1);
  });

  it("oneof required, and oneof members checked only when selected", () => {
    const { msg } = buildFile([
      {
        name: "O",
        oneofs: [{ name: "kind", required: true }, { name: "other" }],
        fields: [
          { name: "a", type: T.STRING, oneof: 0, rules: str({ minLen: 3n }) },
          { name: "b", type: T.INT32, oneof: 0 },
          { name: "c", type: T.STRING, oneof: 1, rules: str({ minLen: 3n }) },
          { name: "d", type: T.STRING, oneof: 1, rules: str({ minLen: 3n }) },
        ],
      },
    ]);
    const O = msg("O");
    const v = (init: Record<string, unknown>) => validateMessage(O, create(O, init));
    expect(v({})).toEqual([
      { path: "kind", rule: "oneof.required", message: "exactly one field of oneof kind must be set (one of: a, b), but none is" },
    ]);
    expect(v({ kind: { case: "b", value: 0 } })).toEqual([]);
    expect(v({ kind: { case: "a", value: "abc" } })).toEqual([]);
    expect(v({ kind: { case: "a", value: "ab" } }).map((x) => `${x.path} ${x.rule}`)).toEqual(["a string.min_len"]);
    expect(v({ kind: { case: "b", value: 1 }, other: { case: "d", value: "abcd" } })).toEqual([]);
    expect(v({ kind: { case: "b", value: 1 }, other: { case: "c", value: "" } }).map((x) => x.path)).toEqual(["c"]);
  });
});

describe("repeated rules", () => {
  const rep = (value: Record<string, unknown>): RulesInit => ({ type: { case: "repeated", value } }) as RulesInit;
  table([
    {
      name: "min_items / max_items",
      field: { type: T.STRING, repeated: true, rules: rep({ minItems: 2n, maxItems: 3n }) },
      good: [["a", "b"], ["a", "b", "c"]],
      bad: [[["a"], "repeated.min_items", "f", /at least 2 item\(s\), but it has 1/], [[], "repeated.min_items"], [["a", "b", "c", "d"], "repeated.max_items"]],
    },
    {
      name: "unique (strings)",
      field: { type: T.STRING, repeated: true, rules: rep({ unique: true }) },
      good: [["a", "b"], []],
      bad: [[["a", "b", "a"], "repeated.unique", "f", /item \[2\] repeats item \[0\] \("a"\)/]],
    },
    { name: "unique (bytes compare by content)", field: { type: T.BYTES, repeated: true, rules: rep({ unique: true }) }, good: [[b(1), b(2)]], bad: [[[b(1), b(1)], "repeated.unique"]] },
    { name: "unique (64-bit)", field: { type: T.INT64, repeated: true, rules: rep({ unique: true }) }, good: [[1n, 2n]], bad: [[[5n, 5n], "repeated.unique"]] },
    {
      name: "items: string rules per element, with the index in the path",
      field: { type: T.STRING, repeated: true, rules: rep({ items: str({ minLen: 2n }) }) },
      good: [["ab", "cd"], []],
      bad: [[["ab", "a"], "repeated.items.string.min_len", "f[1]", /at least 2 characters, got 1 \("a"\)/]],
    },
    {
      name: "items: enum rules",
      field: { type: T.ENUM, typeName: ".sbtest.Color", repeated: true, rules: rep({ items: { type: { case: "enum", value: { definedOnly: true } } } }) },
      good: [[1, 2]],
      bad: [[[1, 9], "repeated.items.enum.defined_only", "f[1]"]],
    },
    {
      name: "items: wrapper messages (UInt32Value elements stay boxed in lists)",
      field: { type: T.MESSAGE, typeName: ".google.protobuf.UInt32Value", repeated: true, rules: rep({ items: { type: { case: "uint32", value: { gt: 0 } } } }) },
      good: [[{ value: 1 }]],
      bad: [[[{ value: 1 }, { value: 0 }], "repeated.items.uint32.gt", "f[1]"]],
    },
    { name: "message elements are validated recursively", field: { ...innerField, repeated: true }, extra: [inner], good: [[{ name: "x" }]], bad: [[[{ name: "x" }, { name: "" }], "string.min_len", "f[1].name"]] },
    { name: "items.message.skip stops recursion", field: { ...innerField, repeated: true, rules: rep({ items: { message: { skip: true } } }) }, extra: [inner], good: [[{ name: "" }]], bad: [] },
    {
      name: "ignore_empty (unknown field 5 in this validate.proto)",
      field: { type: T.STRING, repeated: true, rules: rep({ minItems: 2n, $unknown: unknownTrue(5) }) },
      good: [[], ["a", "b"]],
      bad: [[["a"], "repeated.min_items"]],
    },
  ]);
});

describe("map rules", () => {
  const map = (value: Record<string, unknown>): RulesInit => ({ type: { case: "map", value } }) as RulesInit;
  table([
    {
      name: "min_pairs / max_pairs",
      field: { type: T.STRING, mapKey: T.STRING, rules: map({ minPairs: 1n, maxPairs: 2n }) },
      good: [{ a: "1" }, { a: "1", b: "2" }],
      bad: [[{}, "map.min_pairs", "f", /at least 1 pair\(s\), but it has 0/], [{ a: "1", b: "2", c: "3" }, "map.max_pairs"]],
    },
    {
      name: "keys (string) with the key in the path",
      field: { type: T.STRING, mapKey: T.STRING, rules: map({ keys: str({ minLen: 2n }) }) },
      good: [{ ab: "x" }],
      bad: [[{ ab: "x", a: "y" }, "map.keys.string.min_len", 'f["a"]']],
    },
    {
      name: "keys (int64) are compared as numbers",
      field: { type: T.STRING, mapKey: T.INT64, rules: map({ keys: { type: { case: "int64", value: { gt: 0n } } } }) },
      good: [{ "5": "x" }],
      bad: [[{ "-1": "x" }, "map.keys.int64.gt", "f[-1]", /greater than 0, got -1/]],
    },
    {
      name: "values (scalar)",
      field: { type: T.UINT32, mapKey: T.STRING, rules: map({ values: { type: { case: "uint32", value: { lte: 10 } } } }) },
      good: [{ a: 10 }],
      bad: [[{ a: 11 }, "map.values.uint32.lte", 'f["a"]']],
    },
    {
      name: "values (wrapper messages)",
      field: { type: T.MESSAGE, typeName: ".google.protobuf.UInt32Value", mapKey: T.STRING, rules: map({ values: { type: { case: "uint32", value: { gt: 0 } } } }) },
      good: [{ a: { value: 2 } }],
      bad: [[{ a: { value: 0 } }, "map.values.uint32.gt", 'f["a"]']],
    },
    { name: "message values are validated recursively", field: { ...innerField, mapKey: T.STRING }, extra: [inner], good: [{ a: { name: "x" } }], bad: [[{ a: { name: "" } }, "string.min_len", 'f["a"].name']] },
    { name: "values.message.skip stops recursion", field: { ...innerField, mapKey: T.STRING, rules: map({ values: { message: { skip: true } } }) }, extra: [inner], good: [{ a: { name: "" } }], bad: [] },
    { name: "no_sparse (message values can never be unset in protobuf-es)", field: { ...innerField, mapKey: T.STRING, rules: map({ noSparse: true }) }, extra: [inner], good: [{ a: { name: "x" } }], bad: [[{ a: { name: "" } }, "string.min_len", 'f["a"].name']] },
    {
      name: "ignore_empty (unknown field 6 in this validate.proto)",
      field: { type: T.STRING, mapKey: T.STRING, rules: map({ minPairs: 2n, $unknown: unknownTrue(6) }) },
      good: [{}, { a: "1", b: "2" }],
      bad: [[{ a: "1" }, "map.min_pairs"]],
    },
  ]);
});

describe("Any rules", () => {
  const anyField = { type: T.MESSAGE, typeName: ".google.protobuf.Any" };
  const anyR = (value: Record<string, unknown>): RulesInit => ({ type: { case: "any", value } }) as RulesInit;
  const innerUrl = "type.googleapis.com/sbtest.Inner";
  // Packs an Inner built from the same file as the message under test.
  const packInner = (name: string) => (msg: (n: string) => DescMessage) => anyPack(msg("Inner"), create(msg("Inner"), { name }));

  it("required / in / not_in", () => {
    const { desc, msg } = single({ ...anyField, rules: anyR({ required: true, in: [innerUrl, "type.googleapis.com/sbtest.Other"], notIn: ["type.googleapis.com/sbtest.Other"] }) }, [inner]);
    expect(run(desc, undefined).map((v) => v.rule)).toEqual(["any.required"]);
    expect(run(desc, packInner("x")(msg))).toEqual([]);
    const vs = run(desc, { typeUrl: "type.googleapis.com/sbtest.Nope", value: new Uint8Array() });
    expect(vs).toEqual([{ path: "f", rule: "any.in", message: `type URL must be one of ["${innerUrl}", "type.googleapis.com/sbtest.Other"], got "type.googleapis.com/sbtest.Nope"` }]);
    expect(run(desc, { typeUrl: "type.googleapis.com/sbtest.Other", value: new Uint8Array() }).map((v) => v.rule)).toEqual(["any.not_in"]);
  });

  it("payloads are validated through the registry; unknown types are skipped", () => {
    const { desc, registry, msg } = single(anyField, [inner]);
    const bad = packInner("")(msg);
    expect(run(desc, bad, registry)).toEqual([{ path: "f.name", rule: "string.min_len", message: 'value length must be at least 1 characters, got 0 ("")' }]);
    expect(run(desc, bad)).toEqual([]); // no registry: payload not inspected
    expect(run(desc, { typeUrl: "type.googleapis.com/acme.Unknown", value: new Uint8Array([1, 2]) }, registry)).toEqual([]);
  });

  it("message.skip on an Any field stops payload validation", () => {
    const { desc, registry, msg } = single({ ...anyField, rules: { message: { skip: true } } }, [inner]);
    expect(run(desc, packInner("")(msg), registry)).toEqual([]);
  });
});

const dur = (value: Record<string, unknown>): RulesInit => ({ type: { case: "duration", value } }) as RulesInit;
const s = (seconds: number, nanos = 0) => ({ seconds: BigInt(seconds), nanos });

describe("Duration rules", () => {
  const d = { type: T.MESSAGE, typeName: ".google.protobuf.Duration" };
  table([
    { name: "required", field: { ...d, rules: dur({ required: true }) }, good: [s(0)], bad: [[undefined, "duration.required"]] },
    { name: "unset and not required is fine", field: { ...d, rules: dur({ gt: s(1) }) }, good: [undefined], bad: [] },
    { name: "const", field: { ...d, rules: dur({ const: s(1, 500_000_000) }) }, good: [s(1, 500_000_000)], bad: [[s(1), "duration.const", "f", /must equal 1.500s, got 1s/]] },
    { name: "lt", field: { ...d, rules: dur({ lt: s(1) }) }, good: [s(0, 999_999_999), s(-5)], bad: [[s(1), "duration.lt", "f", /less than 1s, got 1s/]] },
    { name: "lte", field: { ...d, rules: dur({ lte: s(1) }) }, good: [s(1)], bad: [[s(1, 1), "duration.lte", "f", /got 1.000000001s/]] },
    { name: "gt", field: { ...d, rules: dur({ gt: s(0, 1_000_000) }) }, good: [s(1)], bad: [[s(0, 1_000_000), "duration.gt", "f", /greater than 0.001s, got 0.001s/], [s(-1), "duration.gt"]] },
    { name: "gte", field: { ...d, rules: dur({ gte: s(1) }) }, good: [s(1)], bad: [[s(0, 999_000_000), "duration.gte", "f", /got 0.999s/]] },
    { name: "gt + lt inside range", field: { ...d, rules: dur({ gt: s(1), lt: s(5) }) }, good: [s(3)], bad: [[s(1), "duration.gt"], [s(5), "duration.lt", "f", /inside range \(1s, 5s\)/]] },
    { name: "lt < gt: outside range", field: { ...d, rules: dur({ lt: s(1), gt: s(5) }) }, good: [s(0, 500_000_000), s(6)], bad: [[s(3), "duration.lt_gt", "f", /outside range \[1s, 5s\]/]] },
    { name: "in / not_in", field: { ...d, rules: dur({ in: [s(1), s(2)], notIn: [s(2)] }) }, good: [s(1)], bad: [[s(3), "duration.in"], [s(2), "duration.not_in"]] },
    { name: "an invalid duration is reported", field: { ...d, rules: dur({ gt: s(0) }) }, good: [], bad: [[s(0, 1_000_000_000), "duration", "f", /valid duration/], [s(400_000_000_000), "duration"]] },
  ]);
});

describe("Timestamp rules", () => {
  const ts = { type: T.MESSAGE, typeName: ".google.protobuf.Timestamp" };
  const tr = (value: Record<string, unknown>): RulesInit => ({ type: { case: "timestamp", value } }) as RulesInit;
  const at = (iso: string) => timestampFromMs(Date.parse(iso));
  const ago = (ms: number) => timestampFromMs(Date.now() - ms);
  const HOUR = 3_600_000;
  table([
    { name: "required", field: { ...ts, rules: tr({ required: true }) }, good: [at("2024-01-01T00:00:00Z")], bad: [[undefined, "timestamp.required"]] },
    { name: "const", field: { ...ts, rules: tr({ const: at("2024-01-01T00:00:00Z") }) }, good: [at("2024-01-01T00:00:00Z")], bad: [[at("2024-01-02T00:00:00Z"), "timestamp.const", "f", /must equal 2024-01-01T00:00:00Z, got 2024-01-02T00:00:00Z/]] },
    {
      name: "gte + lt",
      field: { ...ts, rules: tr({ gte: at("2024-01-01T00:00:00Z"), lt: at("2025-01-01T00:00:00Z") }) },
      good: [at("2024-01-01T00:00:00Z"), at("2024-12-31T23:59:59Z")],
      bad: [[at("2023-12-31T23:59:59Z"), "timestamp.gte"], [at("2025-01-01T00:00:00Z"), "timestamp.lt"]],
    },
    { name: "gt / lte", field: { ...ts, rules: tr({ gt: at("2024-01-01T00:00:00Z"), lte: at("2024-06-01T00:00:00Z") }) }, good: [at("2024-06-01T00:00:00Z")], bad: [[at("2024-01-01T00:00:00Z"), "timestamp.gt"], [at("2024-06-01T00:00:01Z"), "timestamp.lte"]] },
    { name: "lt_now", field: { ...ts, rules: tr({ ltNow: true }) }, good: [ago(HOUR)], bad: [[ago(-HOUR), "timestamp.lt_now", "f", /must be before now/]] },
    { name: "gt_now", field: { ...ts, rules: tr({ gtNow: true }) }, good: [ago(-HOUR)], bad: [[ago(HOUR), "timestamp.gt_now"]] },
    { name: "within", field: { ...ts, rules: tr({ within: durationFromMs(HOUR) }) }, good: [ago(HOUR / 2), ago(-HOUR / 2)], bad: [[ago(2 * HOUR), "timestamp.within", "f", /within 3600s of now/], [ago(-2 * HOUR), "timestamp.within"]] },
    { name: "lt_now with within", field: { ...ts, rules: tr({ ltNow: true, within: durationFromMs(HOUR) }) }, good: [ago(HOUR / 2)], bad: [[ago(-HOUR / 2), "timestamp.lt_now"], [ago(2 * HOUR), "timestamp.within"]] },
    { name: "an invalid timestamp is reported", field: { ...ts, rules: tr({ ltNow: true }) }, good: [], bad: [[{ seconds: 0n, nanos: -1 }, "timestamp", "f", /valid timestamp/]] },
  ]);
});

describe("wrapper types", () => {
  table([
    {
      name: "singular wrappers are unboxed: rules apply to the scalar when set",
      field: { type: T.MESSAGE, typeName: ".google.protobuf.Int64Value", rules: { type: { case: "int64", value: { gt: 0n } } } },
      good: [undefined, 5n],
      bad: [[0n, "int64.gt"]],
    },
    {
      name: "required plus scalar rules on a StringValue",
      field: { type: T.MESSAGE, typeName: ".google.protobuf.StringValue", rules: { message: { required: true }, type: { case: "string", value: { minLen: 2n } } } },
      good: ["ab"],
      bad: [[undefined, "message.required"], ["a", "string.min_len"], ["", "string.min_len"]],
    },
    { name: "BoolValue const", field: { type: T.MESSAGE, typeName: ".google.protobuf.BoolValue", rules: { type: { case: "bool", value: { const: true } } } }, good: [true, undefined], bad: [[false, "bool.const"]] },
    { name: "DoubleValue range", field: { type: T.MESSAGE, typeName: ".google.protobuf.DoubleValue", rules: { type: { case: "double", value: { gte: 0, lte: 1 } } } }, good: [0, 1, 0.5], bad: [[1.5, "double.lte"]] },
  ]);

  it("wrappers inside a oneof stay boxed", () => {
    const { msg } = buildFile([
      {
        name: "W",
        oneofs: [{ name: "o" }],
        fields: [{ name: "w", type: T.MESSAGE, typeName: ".google.protobuf.UInt32Value", oneof: 0, rules: { type: { case: "uint32", value: { gte: 1 } } } }],
      },
    ]);
    const W = msg("W");
    expect(validateMessage(W, create(W, { o: { case: "w", value: { value: 1 } } }))).toEqual([]);
    expect(validateMessage(W, create(W, { o: { case: "w", value: { value: 0 } } })).map((v) => `${v.path} ${v.rule}`)).toEqual(["w uint32.gte"]);
  });
});

describe("rules that do not fit the field", () => {
  it("throw a clear error at compile time instead of silently passing", () => {
    const { desc } = single({ type: T.INT32, rules: str({ minLen: 1n }) });
    expect(() => run(desc, 1)).toThrow(/sbtest\.M\.f has string rules but is of type int32/);
    expect(() => run(desc, 1), "a failed compile is not cached as an empty plan").toThrow(/has string rules/);
  });

  it("an uncompilable pattern is reported with the field", () => {
    const { desc } = single({ type: T.STRING, rules: str({ pattern: "([a-z]" }) });
    expect(() => run(desc, "a")).toThrow(/sbtest\.M\.f has pattern "\(\[a-z\]" that cannot be compiled/);
  });
});
