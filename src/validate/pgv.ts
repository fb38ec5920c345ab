// Signalbox's interpreter of protoc-gen-validate (PGV) rules, the `(validate.rules)`
// annotations that Envoy's protos carry and that Envoy itself enforces when it
// receives a resource. Every resource Signalbox generates is checked against these
// rules before it is pushed, so a bad resource is caught (with a readable message)
// in the control plane rather than NACKed by every sidecar.
//
// Rules are read from the descriptors at runtime (no build step): each message
// type's walk is generated once, on first use, as one function (compilePlan), and
// the rules on each value are compiled into small checker closures it calls. Fields
// whose subtree cannot produce a violation get no code at all. The walk itself
// reads the message, pushes/pops path segments on one shared stack, and allocates
// little besides the violations it reports (and the decoded payload of each Any).
//
// Semantics follow validate/validate.proto (see the comments on each rule there):
// - Proto3 scalars and enums without explicit presence are always checked, even at
//   their zero value (so `min_len: 1` rejects ""), unless the rule set has
//   `ignore_empty`. Fields with explicit presence (proto3 `optional`, proto2) and
//   oneof members are checked only when set.
// - Unset singular message fields are only checked for `required`.
// - Set message fields are validated recursively unless `message.skip` is set or
//   the message type is `(validate.disabled)` / `(validate.ignored)`.
// - google.protobuf.Any payloads are unpacked through the registry (when one is
//   given and knows the type URL) and validated recursively too. PGV itself stops
//   at Any; Envoy validates the payload when it converts the Any, so Signalbox does
//   the same here.
// - Wrapper types (google.protobuf.UInt32Value, ...) carry scalar rules that apply
//   to the wrapped value when the wrapper is set. (protobuf-es stores singular
//   wrapper fields outside oneofs as the bare scalar, and boxed everywhere else.)
// - lt/lte with gt/gte: when the upper bound is above the lower bound the value must
//   lie inside the range; otherwise (upper <= lower) it must lie outside it.
// - float fields are compared after rounding to 32 bits (what goes on the wire), and
//   NaN fails any range or const rule (PGV's comparisons would let it through).
// - Rules that cannot apply to the field's type throw when the field is first
//   compiled (test/validate/registry.test.ts compiles every generated type), except
//   Any/Duration/Timestamp rules with only `required` on another message type, which
//   Envoy uses and which mean "must be set".

import {
  fromBinary,
  getOption,
  hasOption,
  isFieldSet,
  ScalarType,
  type DescEnum,
  type DescField,
  type DescMessage,
  type DescOneof,
  type Message,
  type MessageShape,
  type Registry,
} from "@bufbuild/protobuf";
import {
  FeatureSet_FieldPresence,
  isWrapperDesc,
  type Any,
  type Duration,
  type Timestamp,
} from "@bufbuild/protobuf/wkt";
import {
  disabled as disabledOption,
  file_validate_validate,
  KnownRegex,
  required as requiredOption,
  rules as rulesOption,
  type AnyRules,
  type BoolRules,
  type BytesRules,
  type DurationRules,
  type EnumRules,
  type FieldRules,
  type MapRules,
  type RepeatedRules,
  type StringRules,
  type TimestampRules,
} from "../gen/validate/validate_pb.ts";
import {
  checkEmail,
  checkHostname,
  checkUri,
  isHeaderName,
  isHeaderValue,
  isIP,
  isIPv4,
  isIPv6,
  isUuid,
} from "./wellknown.ts";

export { envoyRegistry } from "./registry.ts";

/** One broken rule. `path` is the field path from the validated message, e.g.
 * `filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[1].domains`. */
export interface Violation {
  path: string;
  /** The PGV rule that failed, e.g. `string.min_len`, `repeated.items.string.well_known_regex`, `oneof.required`. */
  rule: string;
  /** What the rule requires and what value was found. */
  message: string;
}

/**
 * Validates a message against the PGV rules in its descriptor (recursively).
 * Pass a registry (see envoyRegistry()) to also validate google.protobuf.Any payloads.
 * Returns an empty array when the message is valid.
 *
 * `sharedTypes` names message types whose objects the caller shares between
 * the messages it validates (and never mutates): one found valid is not
 * walked again, in this call or a later one (see runCached).
 */
export function validateMessage<Desc extends DescMessage>(
  schema: Desc,
  message: MessageShape<Desc>,
  registry?: Registry,
  sharedTypes: ReadonlySet<string> = NO_TYPES,
): Violation[] {
  const ctx = newCtx(registry, sharedTypes);
  runCached(planFor(schema), message as unknown as Rec, ctx);
  return ctx.out;
}

const NO_TYPES: ReadonlySet<string> = new Set();

/**
 * Unpacks an Any by its type URL and validates the payload recursively. A type URL the
 * registry does not know is reported (rule `any.type_url`), since it cannot be checked.
 */
export function validateAny(any: Any, registry: Registry): Violation[] {
  const ctx = newCtx(registry);
  const typeName = typeNameOfUrl(any.typeUrl);
  if (registry.getMessage(typeName) === undefined) {
    report(ctx, "any.type_url", `type URL ${show(any.typeUrl)} is not a known message type, so it cannot be validated`);
    return ctx.out;
  }
  visitAnyPayload(any, ctx);
  return ctx.out;
}

// ---------------------------------------------------------------------------
// Walk state

type Rec = Record<string, unknown>;
/** Marks that the next path segment is a map key. */
const mapKeyMarker = Symbol("map key");
type Seg = string | number | bigint | boolean | typeof mapKeyMarker;

interface Ctx {
  out: Violation[];
  path: Seg[];
  registry: Registry | undefined;
  /** Current time in ns since the epoch; read lazily, once per validation. */
  nowNs: bigint | undefined;
  /** Message objects already found valid under this registry (see cleanSetFor). */
  clean: WeakSet<object>;
  /** Message types whose clean objects are remembered in `clean` (see runCached). */
  sharedTypes: ReadonlySet<string>;
}

function newCtx(registry: Registry | undefined, sharedTypes: ReadonlySet<string> = NO_TYPES): Ctx {
  return { out: [], path: [], registry, nowNs: undefined, clean: cleanSetFor(registry), sharedTypes };
}

/**
 * Messages found valid, per registry (Any payloads are checked only with one).
 * Translation shares sub-messages between resources (a virtual host in many
 * route configurations, an endpoint in several assignments) and across
 * snapshots, and never mutates them, so a shared sub-message is walked once.
 * A message's own validity does not depend on where it sits (rules on the
 * field that holds it are checked by its parent), so "clean" carries over.
 * Only clean results are kept: violation paths depend on the position.
 */
const cleanSets = new WeakMap<object, WeakSet<object>>();
const NO_REGISTRY = {};

function cleanSetFor(registry: Registry | undefined): WeakSet<object> {
  const key = registry ?? NO_REGISTRY;
  let set = cleanSets.get(key);
  if (!set) cleanSets.set(key, (set = new WeakSet()));
  return set;
}

function formatPath(path: readonly Seg[]): string {
  let s = "";
  for (let i = 0; i < path.length; i++) {
    const seg = path[i];
    if (seg === mapKeyMarker) {
      const key = path[++i];
      s += typeof key === "string" ? `[${JSON.stringify(key)}]` : `[${String(key)}]`;
    } else if (typeof seg === "number") {
      s += `[${seg}]`;
    } else if (seg !== undefined) {
      s += s === "" ? seg : `.${seg}`;
    }
  }
  return s;
}

function report(ctx: Ctx, rule: string, message: string): void {
  ctx.out.push({ path: formatPath(ctx.path), rule, message });
}

function nowNs(ctx: Ctx): bigint {
  if (ctx.nowNs === undefined) ctx.nowNs = BigInt(Date.now()) * 1_000_000n;
  return ctx.nowNs;
}

type ValueCheck = (v: unknown, ctx: Ctx) => void;
type Step = (m: Rec, ctx: Ctx) => void;
/** A message type's rules, compiled (see compilePlan); `run` is set once compiled. */
interface Plan {
  run: Step;
}

// ---------------------------------------------------------------------------
// Plans (compiled per message descriptor, cached)

const plans = new WeakMap<DescMessage, Plan>();
const checkNothing: Step = () => {};

function planFor(desc: DescMessage): Plan {
  let plan = plans.get(desc);
  if (plan !== undefined) return plan;
  plan = { run: checkNothing };
  plans.set(desc, plan); // before compiling fields, so recursive types terminate
  if (isDisabled(desc)) return plan;
  try {
    plan.run = compilePlan(desc);
  } catch (e) {
    plans.delete(desc); // never keep a half-compiled plan that would silently skip fields
    throw e;
  }
  return plan;
}

/**
 * One function per message type, generated from its rules: the walk over its
 * fields is straight-line code reading each field by a constant name, so a
 * type's messages (which share one shape, see translate/create.ts) are read
 * through monomorphic property loads rather than a generic loop of per-field
 * closures indexing every type's messages by computed name. The rules on each
 * value (ranges, lengths, patterns...) stay the closures compiled below;
 * the generated code only calls them, as it calls a nested type's plan (and
 * a map field's whole check: maps are rare in what Signalbox generates).
 */
function compilePlan(desc: DescMessage): Step {
  const refs: unknown[] = [];
  const ref = (value: unknown): string => `r[${refs.push(value) - 1}]`;
  const lines: string[] = [];
  for (const oneof of desc.oneofs) {
    if (hasOption(oneof, requiredOption) && getOption(oneof, requiredOption)) lines.push(oneofRequiredCode(oneof, ref));
  }
  for (const field of desc.fields) {
    const code = fieldCode(field, ref);
    if (code !== undefined) lines.push(code);
  }
  if (lines.length === 0) return checkNothing;
  const name = `validate_${desc.typeName.replace(/[^A-Za-z0-9_]/g, "_")}`;
  const body = `return function ${name}(m, ctx) {\n  const P = ctx.path;\n  ${lines.join("\n  ")}\n};`;
  return new Function("r", "report", body)(refs, report) as Step;
}

/** A lazily resolved plan reference, so recursion does not look the plan up per visit. */
function recurseInto(desc: DescMessage, remember: boolean): ValueCheck {
  let plan: Plan | undefined;
  if (!remember) {
    return (v, ctx) => {
      plan ??= planFor(desc);
      plan.run(v as Rec, ctx);
    };
  }
  return (v, ctx) => {
    plan ??= planFor(desc);
    runCached(plan, v as Rec, ctx);
  };
}

/**
 * plan.run, skipping a message already found clean; a clean walk that did not
 * read the clock is remembered when the caller named its type as shared. Used
 * for whole messages and for elements of repeated fields (where sharing
 * happens: virtual hosts in many route configurations). Only shared types are
 * remembered because the set is an ephemeron table: every entry costs the
 * garbage collector, and a large one stalls for tens of milliseconds, up to
 * 200 ms at 5,000 services, each time it is resized after a collection
 * (docs/benchmarks.md, "GC pauses under endpoint churn").
 */
function runCached(plan: Plan, m: Rec, ctx: Ctx): void {
  if (ctx.sharedTypes.size === 0 || !ctx.sharedTypes.has(m.$typeName as string)) {
    plan.run(m, ctx);
    return;
  }
  if (ctx.clean.has(m)) return;
  const mark = cleanMark(ctx);
  plan.run(m, ctx);
  rememberIfClean(m, ctx, mark);
}

/**
 * Before checking a value: where its violations would start, or -1 when the
 * clock was already read (a rule relative to now must be checked again).
 */
function cleanMark(ctx: Ctx): number {
  return ctx.nowNs === undefined ? ctx.out.length : -1;
}

/** After checking `value`: remember it as clean if the check reported nothing and read no clock. */
function rememberIfClean(value: object, ctx: Ctx, mark: number): void {
  if (mark >= 0 && ctx.out.length === mark && ctx.nowNs === undefined) ctx.clean.add(value);
}

/** `(validate.disabled)` or `(validate.ignored)` (1072, newer validate.proto) on the message. */
function isDisabled(desc: DescMessage): boolean {
  if (hasOption(desc, disabledOption) && getOption(desc, disabledOption)) return true;
  return unknownBoolTrue(desc.proto.options?.$unknown, 1072);
}

function unknownBoolTrue(unknown: Message["$unknown"], no: number): boolean {
  if (unknown === undefined) return false;
  let value = false;
  for (const u of unknown) {
    if (u.no === no && u.wireType === 0) value = u.data.some((b) => b !== 0); // last one wins
  }
  return value;
}

// Whether validating a message type can produce a violation at all (directly, or in
// a message reachable from it, or through an Any payload). Fields whose type can't
// get no step, which keeps walks over rule-free subtrees (Struct, metadata) free.
const needsCache = new WeakMap<DescMessage, boolean>();

function messageFieldTypes(desc: DescMessage): DescMessage[] {
  const out: DescMessage[] = [];
  for (const f of desc.fields) {
    if (f.fieldKind === "message") out.push(f.message);
    else if (f.fieldKind === "list" && f.listKind === "message") out.push(f.message);
    else if (f.fieldKind === "map" && f.mapKind === "message") out.push(f.message);
  }
  return out;
}

function needsValidation(root: DescMessage): boolean {
  const cached = needsCache.get(root);
  if (cached !== undefined) return cached;
  // Collect every not-yet-decided type reachable from root, then propagate to a fixpoint
  // (types can be recursive, so a plain memoised DFS would answer too early).
  const nodes: DescMessage[] = [];
  const seen = new Set<DescMessage>();
  const stack = [root];
  while (stack.length > 0) {
    const d = stack.pop()!;
    if (seen.has(d) || needsCache.has(d)) continue;
    seen.add(d);
    nodes.push(d);
    for (const t of messageFieldTypes(d)) stack.push(t);
  }
  const value = new Map<DescMessage, boolean>();
  for (const d of nodes) {
    let direct = false;
    if (!isDisabled(d)) {
      direct =
        d.oneofs.some((o) => hasOption(o, requiredOption) && getOption(o, requiredOption)) ||
        d.fields.some((f) => hasOption(f, rulesOption)) ||
        messageFieldTypes(d).some((t) => t.typeName === "google.protobuf.Any");
    }
    value.set(d, direct);
  }
  let changed = true;
  while (changed) {
    changed = false;
    for (const d of nodes) {
      if (value.get(d) === true || isDisabled(d)) continue;
      if (messageFieldTypes(d).some((t) => value.get(t) ?? needsCache.get(t) ?? false)) {
        value.set(d, true);
        changed = true;
      }
    }
  }
  for (const [d, v] of value) needsCache.set(d, v);
  return value.get(root) ?? needsCache.get(root) ?? false;
}

// ---------------------------------------------------------------------------
// Reading rule messages (proto2: presence matters)

const ruleDescs = new Map<string, DescMessage>();
for (const m of file_validate_validate.messages) ruleDescs.set(m.typeName, m);

function has(rules: Message, localName: string): boolean {
  const f = ruleDescs.get(rules.$typeName)?.field[localName];
  return f !== undefined && isFieldSet(rules, f);
}

function get<T>(rules: Message, localName: string): T {
  return (rules as unknown as Rec)[localName] as T;
}

/** A bool rule that newer validate.proto versions define; read from unknown fields if this one lacks it. */
function flag(rules: Message, localName: string, no: number): boolean {
  if (ruleDescs.get(rules.$typeName)?.field[localName] !== undefined) return get<boolean>(rules, localName) === true;
  return unknownBoolTrue(rules.$unknown, no);
}

class RuleMismatch extends Error {}

function mismatch(where: string, ruleCase: string, kind: string): never {
  throw new RuleMismatch(`validate: ${where} has ${ruleCase} rules but is ${kind}; the PGV interpreter cannot apply them`);
}

// ---------------------------------------------------------------------------
// Fields

/** Emits an expression naming `value` for generated code (compilePlan). */
type Ref = (value: unknown) => string;

const js = (value: string | number): string => JSON.stringify(value);

/** `check` applied to `value` (an expression) under path segment `name`. */
function checkedUnder(name: string, check: string, value: string): string {
  return `P.push(${js(name)}); ${check}(${value}, ctx); P.pop();`;
}

/** The code checking one field of `m`, or undefined when its rules cannot fail. */
function fieldCode(field: DescField, ref: Ref): string | undefined {
  const fr = hasOption(field, rulesOption) ? getOption(field, rulesOption) : undefined;
  const where = `${field.parent.typeName}.${field.name}`;
  const name = field.name;
  const ln = js(field.localName);
  switch (field.fieldKind) {
    case "scalar":
    case "enum": {
      const check =
        field.fieldKind === "scalar"
          ? compileScalarRules(fr, field.scalar, "", where)
          : compileEnumRules(fr, field.enum, "", where);
      if (check === undefined) return undefined;
      const c = ref(check);
      if (field.oneof !== undefined) {
        return `{ const g = m[${js(field.oneof.localName)}]; if (g.case === ${ln}) { ${checkedUnder(name, c, "g.value")} } }`;
      }
      if (field.presence !== FeatureSet_FieldPresence.IMPLICIT) {
        return `if (${ref(isFieldSet)}(m, ${ref(field)})) { ${checkedUnder(name, c, `m[${ln}]`)} }`;
      }
      return checkedUnder(name, c, `m[${ln}]`);
    }
    case "message": {
      const unboxed = field.oneof === undefined && isWrapperDesc(field.message);
      const check = compileMessageValue(fr, field.message, "", where, unboxed);
      const requiredRule = requiredRuleOf(fr);
      if (check === undefined && requiredRule === undefined) return undefined;
      if (field.oneof !== undefined) {
        if (check === undefined) return undefined; // a selected oneof member is always set
        return `{ const g = m[${js(field.oneof.localName)}]; if (g.case === ${ln}) { ${checkedUnder(name, ref(check), "g.value")} } }`;
      }
      const unset =
        requiredRule === undefined
          ? ""
          : `P.push(${js(name)}); report(ctx, ${js(requiredRule)}, "value is required, but it is not set"); P.pop();`;
      if (check === undefined) return `if (m[${ln}] === undefined) { ${unset} }`;
      return `{ const v = m[${ln}]; if (v === undefined) { ${unset} } else { ${checkedUnder(name, ref(check), "v")} } }`;
    }
    case "list":
      return listCode(field, fr, where, ref);
    case "map": {
      const step = compileMap(field, fr, where);
      return step === undefined ? undefined : `${ref(step)}(m, ctx);`;
    }
  }
}

/**
 * Envoy has fields such as `ConfigSource config_source = 1 [(validate.rules).any = {required: true}]`:
 * Any/Duration/Timestamp rules on some other message type. PGV accepts these when only `required`
 * is set (the check is type-agnostic), so they mean "must be set"; the message is still validated.
 */
function onlyRequired(fr: FieldRules): boolean {
  const t = fr.type;
  if (t.case !== "any" && t.case !== "duration" && t.case !== "timestamp") return false;
  const d = ruleDescs.get(t.value.$typeName);
  return d !== undefined && d.fields.every((f) => f.localName === "required" || !isFieldSet(t.value, f));
}

function requiredRuleOf(fr: FieldRules | undefined): string | undefined {
  if (fr === undefined) return undefined;
  if (fr.message?.required === true) return "message.required";
  const t = fr.type;
  if (t.case === "any" && t.value.required) return "any.required";
  if (t.case === "duration" && t.value.required) return "duration.required";
  if (t.case === "timestamp" && t.value.required) return "timestamp.required";
  return undefined;
}

function oneofRequiredCode(oneof: DescOneof, ref: Ref): string {
  const choices = oneof.fields.map((f) => f.name).join(", ");
  const message = `exactly one field of oneof ${oneof.name} must be set (one of: ${choices}), but none is`;
  return `if (m[${js(oneof.localName)}].case === undefined) { P.push(${js(oneof.name)}); report(ctx, "oneof.required", ${ref(message)}); P.pop(); }`;
}

function listCode(field: DescField & { fieldKind: "list" }, fr: FieldRules | undefined, where: string, ref: Ref): string | undefined {
  let rr: RepeatedRules | undefined;
  if (fr !== undefined && fr.type.case !== undefined) {
    if (fr.type.case !== "repeated") mismatch(where, fr.type.case, "a repeated field");
    rr = fr.type.value;
  }
  const itemsFr = rr !== undefined && has(rr, "items") ? rr.items : undefined;
  const prefix = "repeated.items.";
  let itemCheck: ValueCheck | undefined;
  switch (field.listKind) {
    case "scalar":
      itemCheck = compileScalarRules(itemsFr, field.scalar, prefix, where);
      break;
    case "enum":
      itemCheck = compileEnumRules(itemsFr, field.enum, prefix, where);
      break;
    case "message":
      itemCheck = compileMessageValue(itemsFr, field.message, prefix, where, false, true);
      break;
  }
  const minItems = rr !== undefined && has(rr, "minItems") ? Number(rr.minItems) : undefined;
  const maxItems = rr !== undefined && has(rr, "maxItems") ? Number(rr.maxItems) : undefined;
  const unique = rr?.unique === true;
  if (unique && field.listKind === "message") mismatch(where, "repeated.unique", "a repeated message field");
  const ignoreEmpty = rr !== undefined && flag(rr, "ignoreEmpty", 5);
  if (itemCheck === undefined && minItems === undefined && maxItems === undefined && !unique) return undefined;
  const counts: string[] = [];
  if (minItems !== undefined) {
    counts.push(`if (n < ${minItems}) report(ctx, "repeated.min_items", "value must contain at least ${minItems} item(s), but it has " + n);`);
  }
  if (maxItems !== undefined) {
    counts.push(`if (n > ${maxItems}) report(ctx, "repeated.max_items", "value must contain at most ${maxItems} item(s), but it has " + n);`);
  }
  if (unique) counts.push(`if (n > 1) ${ref(checkUnique)}(list, ctx);`);
  const items = itemCheck === undefined ? "" : `for (let i = 0; i < n; i++) { P.push(i); ${ref(itemCheck)}(list[i], ctx); P.pop(); }`;
  const checks = `P.push(${js(field.name)}); ${counts.join(" ")} ${items} P.pop();`;
  return `{ const list = m[${js(field.localName)}]; const n = list.length; ${ignoreEmpty ? `if (n > 0) { ${checks} }` : checks} }`;
}

function checkUnique(list: readonly unknown[], ctx: Ctx): void {
  const firstAt = new Map<unknown, number>();
  for (let i = 0; i < list.length; i++) {
    const v = list[i];
    const key = v instanceof Uint8Array ? `bytes:${hex(v)}` : v;
    const prev = firstAt.get(key);
    if (prev !== undefined) {
      report(ctx, "repeated.unique", `items must be unique, but item [${i}] repeats item [${prev}] (${show(v)})`);
    } else {
      firstAt.set(key, i);
    }
  }
}

function compileMap(field: DescField & { fieldKind: "map" }, fr: FieldRules | undefined, where: string): Step | undefined {
  let mr: MapRules | undefined;
  if (fr !== undefined && fr.type.case !== undefined) {
    if (fr.type.case !== "map") mismatch(where, fr.type.case, "a map field");
    mr = fr.type.value;
  }
  const keysFr = mr !== undefined && has(mr, "keys") ? mr.keys : undefined;
  const valuesFr = mr !== undefined && has(mr, "values") ? mr.values : undefined;
  const keyType = field.mapKey;
  const keyCheck = compileScalarRules(keysFr, keyType, "map.keys.", where);
  let valueCheck: ValueCheck | undefined;
  switch (field.mapKind) {
    case "scalar":
      valueCheck = compileScalarRules(valuesFr, field.scalar, "map.values.", where);
      break;
    case "enum":
      valueCheck = compileEnumRules(valuesFr, field.enum, "map.values.", where);
      break;
    case "message":
      valueCheck = compileMessageValue(valuesFr, field.message, "map.values.", where);
      break;
  }
  const minPairs = mr !== undefined && has(mr, "minPairs") ? Number(mr.minPairs) : undefined;
  const maxPairs = mr !== undefined && has(mr, "maxPairs") ? Number(mr.maxPairs) : undefined;
  const noSparse = mr?.noSparse === true && field.mapKind === "message";
  const ignoreEmpty = mr !== undefined && flag(mr, "ignoreEmpty", 6);
  if (keyCheck === undefined && valueCheck === undefined && minPairs === undefined && maxPairs === undefined && !noSparse) {
    return undefined;
  }
  const name = field.name;
  const ln = field.localName;
  const keyOf = mapKeyDecoder(keyType);
  return (m, ctx) => {
    const map = m[ln] as Rec;
    let n = 0;
    for (const k in map) if (Object.prototype.hasOwnProperty.call(map, k)) n++;
    if (ignoreEmpty && n === 0) return;
    ctx.path.push(name);
    if (minPairs !== undefined && n < minPairs) {
      report(ctx, "map.min_pairs", `value must contain at least ${minPairs} pair(s), but it has ${n}`);
    }
    if (maxPairs !== undefined && n > maxPairs) {
      report(ctx, "map.max_pairs", `value must contain at most ${maxPairs} pair(s), but it has ${n}`);
    }
    if (keyCheck !== undefined || valueCheck !== undefined || noSparse) {
      for (const k in map) {
        if (!Object.prototype.hasOwnProperty.call(map, k)) continue;
        const key = keyOf(k);
        ctx.path.push(mapKeyMarker, key as Seg);
        if (keyCheck !== undefined) keyCheck(key, ctx);
        const v = map[k];
        if (v === undefined || v === null) {
          if (noSparse) report(ctx, "map.no_sparse", "map values must not be unset");
        } else if (valueCheck !== undefined) {
          valueCheck(v, ctx);
        }
        ctx.path.length -= 2;
      }
    }
    ctx.path.pop();
  };
}

/** protobuf-es stores map keys as object property names; turn them back into the key type. */
function mapKeyDecoder(t: ScalarType): (k: string) => unknown {
  switch (t) {
    case ScalarType.BOOL:
      return (k) => k === "true";
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.SINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
      return (k) => BigInt(k);
    case ScalarType.STRING:
      return (k) => k;
    default:
      return (k) => Number(k);
  }
}

// ---------------------------------------------------------------------------
// Values

const SCALAR_RULE: Record<string, ScalarType> = {
  float: ScalarType.FLOAT,
  double: ScalarType.DOUBLE,
  int32: ScalarType.INT32,
  int64: ScalarType.INT64,
  uint32: ScalarType.UINT32,
  uint64: ScalarType.UINT64,
  sint32: ScalarType.SINT32,
  sint64: ScalarType.SINT64,
  fixed32: ScalarType.FIXED32,
  fixed64: ScalarType.FIXED64,
  sfixed32: ScalarType.SFIXED32,
  sfixed64: ScalarType.SFIXED64,
  bool: ScalarType.BOOL,
  string: ScalarType.STRING,
  bytes: ScalarType.BYTES,
};

function scalarName(t: ScalarType): string {
  return ScalarType[t].toLowerCase();
}

function compileScalarRules(fr: FieldRules | undefined, scalar: ScalarType, prefix: string, where: string): ValueCheck | undefined {
  if (fr === undefined || fr.type.case === undefined) return undefined;
  const t = fr.type;
  if (SCALAR_RULE[t.case] !== scalar) mismatch(where, t.case, `of type ${scalarName(scalar)}`);
  const rule = prefix + t.case;
  switch (t.case) {
    case "bool":
      return compileBool(t.value, rule);
    case "string":
      return compileString(t.value, rule, where);
    case "bytes":
      return compileBytes(t.value, rule, where);
    case "float":
    case "double":
    case "int32":
    case "int64":
    case "uint32":
    case "uint64":
    case "sint32":
    case "sint64":
    case "fixed32":
    case "fixed64":
    case "sfixed32":
    case "sfixed64":
      return compileNumeric(t.value, scalar, rule);
    default:
      return mismatch(where, t.case, `of type ${scalarName(scalar)}`);
  }
}

/**
 * Checks for one message value. `unboxed` says the value is stored as the wrapped scalar:
 * protobuf-es unwraps wrapper types (UInt32Value, ...) in singular fields outside oneofs,
 * but keeps the wrapper message in oneofs, lists and maps.
 */
function compileMessageValue(
  fr: FieldRules | undefined,
  desc: DescMessage,
  prefix: string,
  where: string,
  unboxed = false,
  /** Remember clean values (list elements, see runCached). */
  remember = false,
): ValueCheck | undefined {
  const ruleCase = fr?.type.case;
  const skip = fr?.message?.skip === true;
  if (isWrapperDesc(desc)) {
    if (fr === undefined || ruleCase === undefined) return undefined;
    const valueField = desc.fields[0];
    if (valueField === undefined || valueField.fieldKind !== "scalar") return undefined;
    const inner = compileScalarRules(fr, valueField.scalar, prefix, where);
    if (inner === undefined || unboxed) return inner;
    const ln = valueField.localName;
    return (v, ctx) => inner((v as Rec)[ln], ctx);
  }
  switch (desc.typeName) {
    case "google.protobuf.Duration":
      if (ruleCase === undefined) return undefined;
      if (fr?.type.case !== "duration") return mismatch(where, ruleCase, "a google.protobuf.Duration");
      return compileDuration(fr.type.value, prefix + "duration");
    case "google.protobuf.Timestamp":
      if (ruleCase === undefined) return undefined;
      if (fr?.type.case !== "timestamp") return mismatch(where, ruleCase, "a google.protobuf.Timestamp");
      return compileTimestamp(fr.type.value, prefix + "timestamp");
    case "google.protobuf.Any": {
      let anyRules: AnyRules | undefined;
      if (ruleCase !== undefined) {
        if (fr?.type.case !== "any") return mismatch(where, ruleCase, "a google.protobuf.Any");
        anyRules = fr.type.value;
      }
      return compileAny(anyRules, prefix + "any", skip);
    }
  }
  if (ruleCase !== undefined && !(fr !== undefined && onlyRequired(fr))) {
    mismatch(where, ruleCase, `a message (${desc.typeName})`);
  }
  if (skip || !needsValidation(desc)) return undefined;
  return recurseInto(desc, remember);
}

// --- numbers ---------------------------------------------------------------

type Num = number | bigint;

function is64Bit(t: ScalarType): boolean {
  return (
    t === ScalarType.INT64 || t === ScalarType.UINT64 || t === ScalarType.SINT64 ||
    t === ScalarType.FIXED64 || t === ScalarType.SFIXED64
  );
}

function toBig(v: unknown): bigint {
  return typeof v === "bigint" ? v : BigInt(v as string | number);
}

function fmtNum(x: Num): string {
  return String(x);
}

/**
 * Builds the lt/lte/gt/gte check shared by numbers, durations and timestamps.
 * All operands are of one kind (all numbers or all bigints).
 */
function compileRange(
  rule: string,
  bounds: { lt?: Num; lte?: Num; gt?: Num; gte?: Num },
  fmt: (x: Num) => string,
): ((x: Num, ctx: Ctx) => void) | undefined {
  const upperName = bounds.lt !== undefined ? "lt" : "lte";
  const upper = bounds.lt ?? bounds.lte;
  const upperIncl = bounds.lt === undefined;
  const lowerName = bounds.gt !== undefined ? "gt" : "gte";
  const lower = bounds.gt ?? bounds.gte;
  const lowerIncl = bounds.gt === undefined;
  const below = (x: Num, l: Num): boolean => (lowerIncl ? x < l : x <= l); // fails the lower bound
  const above = (x: Num, u: Num): boolean => (upperIncl ? x > u : x >= u); // fails the upper bound
  const upperText = (u: Num): string =>
    upperIncl ? `less than or equal to ${fmt(u)}` : `less than ${fmt(u)}`;
  const lowerText = (l: Num): string =>
    lowerIncl ? `greater than or equal to ${fmt(l)}` : `greater than ${fmt(l)}`;
  if (upper !== undefined && lower !== undefined) {
    if (upper > lower) {
      const range = `${lowerIncl ? "[" : "("}${fmt(lower)}, ${fmt(upper)}${upperIncl ? "]" : ")"}`;
      return (x, ctx) => {
        if (below(x, lower)) report(ctx, `${rule}.${lowerName}`, `value must be inside range ${range}, got ${fmt(x)}`);
        else if (above(x, upper)) report(ctx, `${rule}.${upperName}`, `value must be inside range ${range}, got ${fmt(x)}`);
      };
    }
    // Reversed bounds: the value must lie outside [upper, lower].
    const range = `${upperIncl ? "(" : "["}${fmt(upper)}, ${fmt(lower)}${lowerIncl ? ")" : "]"}`;
    return (x, ctx) => {
      if (above(x, upper) && below(x, lower)) {
        report(ctx, `${rule}.${upperName}_${lowerName}`, `value must be outside range ${range}, got ${fmt(x)}`);
      }
    };
  }
  if (upper !== undefined) {
    return (x, ctx) => {
      if (above(x, upper)) report(ctx, `${rule}.${upperName}`, `value must be ${upperText(upper)}, got ${fmt(x)}`);
    };
  }
  if (lower !== undefined) {
    return (x, ctx) => {
      if (below(x, lower)) report(ctx, `${rule}.${lowerName}`, `value must be ${lowerText(lower)}, got ${fmt(x)}`);
    };
  }
  return undefined;
}

function compileNumeric(r: Message, scalar: ScalarType, rule: string): ValueCheck | undefined {
  const big = is64Bit(scalar);
  const isFloat = scalar === ScalarType.FLOAT || scalar === ScalarType.DOUBLE;
  const opt = (n: string): Num | undefined => (has(r, n) ? get<Num>(r, n) : undefined);
  const constVal = opt("const");
  const range = compileRange(rule, { lt: opt("lt"), lte: opt("lte"), gt: opt("gt"), gte: opt("gte") }, fmtNum);
  const inList = get<Num[]>(r, "in");
  const notIn = get<Num[]>(r, "notIn");
  const ignoreEmpty = flag(r, "ignoreEmpty", 8);
  if (constVal === undefined && range === undefined && inList.length === 0 && notIn.length === 0) return undefined;
  return (v, ctx) => {
    // Compare what Envoy will see on the wire: floats are narrowed to 32 bits.
    const x: Num = big ? toBig(v) : scalar === ScalarType.FLOAT ? Math.fround(v as number) : (v as number);
    if (ignoreEmpty && (x === 0 || x === 0n)) return;
    if (isFloat && Number.isNaN(x)) {
      // PGV's comparisons let NaN through every bound; Signalbox never means to send one.
      if (range !== undefined || constVal !== undefined) report(ctx, rule, "value must be a number, got NaN");
      return;
    }
    checkComparable(x, ctx, rule, fmtNum, constVal, range, inList, notIn);
  };
}

/** The const, range, in and not_in rules of a number or a duration (as nanoseconds), with values shown by `fmt`. */
function checkComparable(
  x: Num,
  ctx: Ctx,
  rule: string,
  fmt: (x: Num) => string,
  constVal: Num | undefined,
  range: ((x: Num, ctx: Ctx) => void) | undefined,
  inList: readonly Num[],
  notIn: readonly Num[],
): void {
  if (constVal !== undefined && x !== constVal) report(ctx, `${rule}.const`, `value must equal ${fmt(constVal)}, got ${fmt(x)}`);
  if (range !== undefined) range(x, ctx);
  if (inList.length > 0 && !inList.includes(x)) {
    report(ctx, `${rule}.in`, `value must be one of [${inList.map(fmt).join(", ")}], got ${fmt(x)}`);
  }
  if (notIn.length > 0 && notIn.includes(x)) {
    report(ctx, `${rule}.not_in`, `value must not be one of [${notIn.map(fmt).join(", ")}], got ${fmt(x)}`);
  }
}

function compileBool(r: BoolRules, rule: string): ValueCheck | undefined {
  if (!has(r, "const")) return undefined;
  const c = r.const;
  return (v, ctx) => {
    if (v !== c) report(ctx, `${rule}.const`, `value must equal ${String(c)}, got ${String(v)}`);
  };
}

// --- enums -------------------------------------------------------------------

function fmtEnum(e: DescEnum, n: number): string {
  const v = e.value[n];
  return v !== undefined ? `${v.name} (${n})` : String(n);
}

function compileEnumRules(fr: FieldRules | undefined, e: DescEnum, prefix: string, where: string): ValueCheck | undefined {
  if (fr === undefined || fr.type.case === undefined) return undefined;
  if (fr.type.case !== "enum") mismatch(where, fr.type.case, `an enum (${e.typeName})`);
  const r: EnumRules = fr.type.value;
  const rule = prefix + "enum";
  const constVal = has(r, "const") ? r.const : undefined;
  const definedOnly = r.definedOnly;
  const inList = r.in;
  const notIn = r.notIn;
  if (constVal === undefined && !definedOnly && inList.length === 0 && notIn.length === 0) return undefined;
  const defined = new Set(e.values.map((v) => v.number));
  return (v, ctx) => {
    const n = v as number;
    if (constVal !== undefined && n !== constVal) {
      report(ctx, `${rule}.const`, `value must equal ${fmtEnum(e, constVal)}, got ${fmtEnum(e, n)}`);
    }
    if (definedOnly && !defined.has(n)) {
      report(ctx, `${rule}.defined_only`, `value must be one of the defined values of enum ${e.typeName}, got ${n}`);
    }
    if (inList.length > 0 && !inList.includes(n)) {
      report(ctx, `${rule}.in`, `value must be one of [${inList.map((x) => fmtEnum(e, x)).join(", ")}], got ${fmtEnum(e, n)}`);
    }
    if (notIn.length > 0 && notIn.includes(n)) {
      report(ctx, `${rule}.not_in`, `value must not be one of [${notIn.map((x) => fmtEnum(e, x)).join(", ")}], got ${fmtEnum(e, n)}`);
    }
  };
}

// --- strings -------------------------------------------------------------------

/** Length in Unicode code points (what PGV calls characters / runes). */
export function runeLength(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

/** Length of the UTF-8 encoding (lone surrogates encode as U+FFFD, 3 bytes, as protobuf-es does). */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

const MAX_SHOWN = 80;

/** A value, quoted and shortened for a message. */
function show(v: unknown): string {
  if (typeof v === "string") {
    const s = v.length > MAX_SHOWN ? `${v.slice(0, MAX_SHOWN)}…` : v;
    return JSON.stringify(s);
  }
  if (v instanceof Uint8Array) return `0x${hex(v.length > 40 ? v.subarray(0, 40) : v)}${v.length > 40 ? "…" : ""}`;
  return String(v);
}

function hex(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}

/**
 * Compiles an RE2 pattern as a JS RegExp. The two dialects agree on the syntax Envoy
 * uses; RE2-only spellings that have a JS equivalent are translated: leading `(?flags)`,
 * `(?P<name>`, `\A`, `\z`, `\pL`, `\Q...\E`, and POSIX classes such as `[[:alpha:]]`.
 */
export function compileRe2(pattern: string): RegExp {
  let src = pattern;
  let flags = "";
  const lead = /^\(\?([imsU]+)\)/.exec(src);
  if (lead !== null) {
    const f = lead[1] ?? "";
    if (f.includes("U")) throw new Error(`RE2 flag U (ungreedy) has no JavaScript equivalent in pattern ${JSON.stringify(pattern)}`);
    flags = f;
    src = src.slice(lead[0].length);
  }
  const posix: Record<string, string> = {
    alnum: "0-9A-Za-z", alpha: "A-Za-z", ascii: "\\x00-\\x7F", blank: "\\t ", cntrl: "\\x00-\\x1F\\x7F",
    digit: "0-9", graph: "!-~", lower: "a-z", print: " -~", punct: "!-\\/:-@\\[-`{-~", space: "\\t\\n\\v\\f\\r ",
    upper: "A-Z", word: "0-9A-Za-z_", xdigit: "0-9A-Fa-f",
  };
  let out = "";
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c === "\\") {
      const d = src[i + 1];
      if (d === "A") { out += "^"; i++; continue; }
      if (d === "z") { out += "$"; i++; continue; }
      if (d === "Q") {
        const end = src.indexOf("\\E", i + 2);
        const lit = src.slice(i + 2, end === -1 ? src.length : end);
        out += lit.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
        i = end === -1 ? src.length : end + 1;
        continue;
      }
      if ((d === "p" || d === "P") && src[i + 2] !== "{" && src[i + 2] !== undefined) {
        out += `\\${d}{${src[i + 2]}}`;
        i += 2;
        continue;
      }
      out += c + (d ?? "");
      i++;
      continue;
    }
    if (c === "(" && src.startsWith("(?P<", i)) { out += "(?<"; i += 3; continue; }
    if (c === "[" && src[i + 1] === ":") {
      const m = /^\[:(\^?)([a-z]+):\]/.exec(src.slice(i));
      const cls = m !== null ? posix[m[2] ?? ""] : undefined;
      if (m !== null && cls !== undefined && m[1] === "") { out += cls; i += m[0].length - 1; continue; }
    }
    out += c;
  }
  try {
    return new RegExp(out, flags + "u");
  } catch {
    return new RegExp(out, flags); // e.g. identity escapes RE2 accepts but unicode-mode JS rejects
  }
}

function compileString(r: StringRules, rule: string, where: string): ValueCheck | undefined {
  const checks: ((s: string, ctx: Ctx) => void)[] = [];
  if (has(r, "const")) {
    const c = r.const;
    checks.push((s, ctx) => {
      if (s !== c) report(ctx, `${rule}.const`, `value must equal ${show(c)}, got ${show(s)}`);
    });
  }
  const lenRule = (name: string, what: "characters" | "bytes", measure: (s: string) => number, test: (n: number, lim: number) => boolean, text: string): void => {
    const local = name.replace(/_([a-z])/g, (_m, ch: string) => ch.toUpperCase());
    if (!has(r, local)) return;
    const lim = Number(get<bigint>(r, local));
    checks.push((s, ctx) => {
      const n = measure(s);
      if (!test(n, lim)) report(ctx, `${rule}.${name}`, `value length must be ${text} ${lim} ${what}, got ${n} (${show(s)})`);
    });
  };
  lenRule("len", "characters", runeLength, (n, l) => n === l, "exactly");
  lenRule("min_len", "characters", runeLength, (n, l) => n >= l, "at least");
  lenRule("max_len", "characters", runeLength, (n, l) => n <= l, "at most");
  lenRule("len_bytes", "bytes", utf8Length, (n, l) => n === l, "exactly");
  lenRule("min_bytes", "bytes", utf8Length, (n, l) => n >= l, "at least");
  lenRule("max_bytes", "bytes", utf8Length, (n, l) => n <= l, "at most");
  if (has(r, "pattern")) {
    const pattern = r.pattern;
    let re: RegExp;
    try {
      re = compileRe2(pattern);
    } catch (e) {
      throw new Error(`validate: ${where} has pattern ${JSON.stringify(pattern)} that cannot be compiled: ${(e as Error).message}`, { cause: e });
    }
    checks.push((s, ctx) => {
      if (!re.test(s)) report(ctx, `${rule}.pattern`, `value must match the regular expression ${show(pattern)}, got ${show(s)}`);
    });
  }
  if (has(r, "prefix")) {
    const p = r.prefix;
    checks.push((s, ctx) => {
      if (!s.startsWith(p)) report(ctx, `${rule}.prefix`, `value must start with ${show(p)}, got ${show(s)}`);
    });
  }
  if (has(r, "suffix")) {
    const p = r.suffix;
    checks.push((s, ctx) => {
      if (!s.endsWith(p)) report(ctx, `${rule}.suffix`, `value must end with ${show(p)}, got ${show(s)}`);
    });
  }
  if (has(r, "contains")) {
    const p = r.contains;
    checks.push((s, ctx) => {
      if (!s.includes(p)) report(ctx, `${rule}.contains`, `value must contain ${show(p)}, got ${show(s)}`);
    });
  }
  if (has(r, "notContains")) {
    const p = r.notContains;
    checks.push((s, ctx) => {
      if (s.includes(p)) report(ctx, `${rule}.not_contains`, `value must not contain ${show(p)}, got ${show(s)}`);
    });
  }
  if (r.in.length > 0) {
    const set = new Set(r.in);
    const list = r.in.map(show).join(", ");
    checks.push((s, ctx) => {
      if (!set.has(s)) report(ctx, `${rule}.in`, `value must be one of [${list}], got ${show(s)}`);
    });
  }
  if (r.notIn.length > 0) {
    const set = new Set(r.notIn);
    const list = r.notIn.map(show).join(", ");
    checks.push((s, ctx) => {
      if (set.has(s)) report(ctx, `${rule}.not_in`, `value must not be one of [${list}], got ${show(s)}`);
    });
  }
  const wk = r.wellKnown;
  const reason = (name: string, what: string, test: (s: string) => string | undefined): void => {
    checks.push((s, ctx) => {
      const why = test(s);
      if (why !== undefined) report(ctx, `${rule}.${name}`, `value must be ${what}, got ${show(s)}${why === "" ? "" : `: ${why}`}`);
    });
  };
  const bool = (ok: (s: string) => boolean) => (s: string): string | undefined => (ok(s) ? undefined : "");
  switch (wk.case) {
    case "email":
      if (wk.value) reason("email", "a valid email address", checkEmail);
      break;
    case "hostname":
      if (wk.value) reason("hostname", "a valid hostname", checkHostname);
      break;
    case "ip":
      if (wk.value) reason("ip", "a valid IP address", bool(isIP));
      break;
    case "ipv4":
      if (wk.value) reason("ipv4", "a valid IPv4 address", bool(isIPv4));
      break;
    case "ipv6":
      if (wk.value) reason("ipv6", "a valid IPv6 address", bool(isIPv6));
      break;
    case "uri":
      if (wk.value) reason("uri", "a valid absolute URI", (s) => checkUri(s, false));
      break;
    case "uriRef":
      if (wk.value) reason("uri_ref", "a valid URI reference", (s) => checkUri(s, true));
      break;
    case "address":
      if (wk.value) reason("address", "a valid hostname or IP address", (s) => (isIP(s) ? undefined : checkHostname(s)));
      break;
    case "uuid":
      if (wk.value) reason("uuid", "a valid UUID", bool(isUuid));
      break;
    case "wellKnownRegex": {
      const strict = r.strict; // defaults to true
      const mode = strict ? "" : " (loose: no NUL, CR or LF)";
      if (wk.value === KnownRegex.HTTP_HEADER_NAME) {
        reason("well_known_regex", `a valid HTTP header name${mode}`, bool((s) => isHeaderName(s, strict)));
      } else if (wk.value === KnownRegex.HTTP_HEADER_VALUE) {
        reason("well_known_regex", `a valid HTTP header value${mode}`, bool((s) => isHeaderValue(s, strict)));
      }
      break;
    }
    case undefined:
      break;
  }
  if (checks.length === 0) return undefined;
  const ignoreEmpty = r.ignoreEmpty;
  return (v, ctx) => {
    const s = v as string;
    if (ignoreEmpty && s.length === 0) return;
    for (let i = 0; i < checks.length; i++) checks[i]!(s, ctx);
  };
}

// --- bytes -----------------------------------------------------------------

function bytesEqual(a: Uint8Array, b: Uint8Array, offset = 0): boolean {
  if (offset + b.length > a.length) return false;
  for (let i = 0; i < b.length; i++) if (a[offset + i] !== b[i]) return false;
  return true;
}

function bytesIndexOf(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i + b.length <= a.length; i++) if (bytesEqual(a, b, i)) return i;
  return -1;
}

const utf8 = new TextDecoder();

function compileBytes(r: BytesRules, rule: string, where: string): ValueCheck | undefined {
  const checks: ((b: Uint8Array, ctx: Ctx) => void)[] = [];
  if (has(r, "const")) {
    const c = r.const;
    checks.push((b, ctx) => {
      if (b.length !== c.length || !bytesEqual(b, c)) report(ctx, `${rule}.const`, `value must equal ${show(c)}, got ${show(b)}`);
    });
  }
  const lenRule = (name: "len" | "min_len" | "max_len", local: "len" | "minLen" | "maxLen", test: (n: number, l: number) => boolean, text: string): void => {
    if (!has(r, local)) return;
    const lim = Number(r[local]);
    checks.push((b, ctx) => {
      if (!test(b.length, lim)) report(ctx, `${rule}.${name}`, `value length must be ${text} ${lim} bytes, got ${b.length}`);
    });
  };
  lenRule("len", "len", (n, l) => n === l, "exactly");
  lenRule("min_len", "minLen", (n, l) => n >= l, "at least");
  lenRule("max_len", "maxLen", (n, l) => n <= l, "at most");
  if (has(r, "pattern")) {
    const pattern = r.pattern;
    let re: RegExp;
    try {
      re = compileRe2(pattern);
    } catch (e) {
      throw new Error(`validate: ${where} has pattern ${JSON.stringify(pattern)} that cannot be compiled: ${(e as Error).message}`, { cause: e });
    }
    checks.push((b, ctx) => {
      if (!re.test(utf8.decode(b))) report(ctx, `${rule}.pattern`, `value must match the regular expression ${show(pattern)}, got ${show(b)}`);
    });
  }
  if (has(r, "prefix")) {
    const p = r.prefix;
    checks.push((b, ctx) => {
      if (!bytesEqual(b, p)) report(ctx, `${rule}.prefix`, `value must start with ${show(p)}, got ${show(b)}`);
    });
  }
  if (has(r, "suffix")) {
    const p = r.suffix;
    checks.push((b, ctx) => {
      if (b.length < p.length || !bytesEqual(b, p, b.length - p.length)) report(ctx, `${rule}.suffix`, `value must end with ${show(p)}, got ${show(b)}`);
    });
  }
  if (has(r, "contains")) {
    const p = r.contains;
    checks.push((b, ctx) => {
      if (bytesIndexOf(b, p) === -1) report(ctx, `${rule}.contains`, `value must contain ${show(p)}, got ${show(b)}`);
    });
  }
  const same = (b: Uint8Array) => (x: Uint8Array): boolean => x.length === b.length && bytesEqual(b, x);
  if (r.in.length > 0) {
    const list = r.in;
    checks.push((b, ctx) => {
      if (!list.some(same(b))) report(ctx, `${rule}.in`, `value must be one of [${list.map(show).join(", ")}], got ${show(b)}`);
    });
  }
  if (r.notIn.length > 0) {
    const list = r.notIn;
    checks.push((b, ctx) => {
      if (list.some(same(b))) report(ctx, `${rule}.not_in`, `value must not be one of [${list.map(show).join(", ")}], got ${show(b)}`);
    });
  }
  const wk = r.wellKnown;
  if (wk.case !== undefined && wk.value) {
    const [ok, what] =
      wk.case === "ip" ? [(n: number) => n === 4 || n === 16, "an IP address (4 or 16 bytes)"] as const
      : wk.case === "ipv4" ? [(n: number) => n === 4, "an IPv4 address (4 bytes)"] as const
      : [(n: number) => n === 16, "an IPv6 address (16 bytes)"] as const;
    checks.push((b, ctx) => {
      if (!ok(b.length)) report(ctx, `${rule}.${wk.case}`, `value must be ${what}, got ${b.length} bytes`);
    });
  }
  if (checks.length === 0) return undefined;
  const ignoreEmpty = flag(r, "ignoreEmpty", 14);
  return (v, ctx) => {
    const b = v as Uint8Array;
    if (ignoreEmpty && b.length === 0) return;
    for (let i = 0; i < checks.length; i++) checks[i]!(b, ctx);
  };
}

// --- Any -------------------------------------------------------------------

function typeNameOfUrl(url: string): string {
  const slash = url.lastIndexOf("/");
  return slash === -1 ? url : url.slice(slash + 1);
}

function compileAny(r: AnyRules | undefined, rule: string, skip: boolean): ValueCheck | undefined {
  const inList = r?.in ?? [];
  const notIn = r?.notIn ?? [];
  if (skip && inList.length === 0 && notIn.length === 0) return undefined;
  return (v, ctx) => {
    const any = v as Any;
    if (inList.length > 0 && !inList.includes(any.typeUrl)) {
      report(ctx, `${rule}.in`, `type URL must be one of [${inList.map(show).join(", ")}], got ${show(any.typeUrl)}`);
    }
    if (notIn.length > 0 && notIn.includes(any.typeUrl)) {
      report(ctx, `${rule}.not_in`, `type URL must not be one of [${notIn.map(show).join(", ")}], got ${show(any.typeUrl)}`);
    }
    // A payload is decoded to be checked: remember a clean one, whatever the
    // caller shares (decoding is the cost; translation shares packed configs).
    if (skip || ctx.clean.has(any)) return;
    const mark = cleanMark(ctx);
    visitAnyPayload(any, ctx);
    rememberIfClean(any, ctx, mark);
  };
}

/** Validates an Any's payload if the registry knows its type; unknown types are skipped. */
function visitAnyPayload(any: Any, ctx: Ctx): void {
  const registry = ctx.registry;
  if (registry === undefined) return;
  const desc = registry.getMessage(typeNameOfUrl(any.typeUrl));
  if (desc === undefined || !needsValidation(desc)) return;
  let payload: Message;
  try {
    payload = fromBinary(desc, any.value, { readUnknownFields: false });
  } catch (e) {
    report(ctx, "any.unpack", `payload of type ${desc.typeName} cannot be decoded: ${(e as Error).message}`);
    return;
  }
  planFor(desc).run(payload as unknown as Rec, ctx);
}

// --- Duration / Timestamp ------------------------------------------------------

const NS = 1_000_000_000n;
const MAX_DURATION_SECONDS = 315_576_000_000n;
const MIN_TIMESTAMP_SECONDS = -62_135_596_800n; // 0001-01-01T00:00:00Z
const MAX_TIMESTAMP_SECONDS = 253_402_300_799n; // 9999-12-31T23:59:59Z

function durationNs(d: Duration): bigint {
  return d.seconds * NS + BigInt(d.nanos);
}

function durationProblem(d: Duration): string | undefined {
  if (d.seconds > MAX_DURATION_SECONDS || d.seconds < -MAX_DURATION_SECONDS) return "seconds out of range (±10000 years)";
  if (d.nanos > 999_999_999 || d.nanos < -999_999_999) return "nanos out of range";
  if ((d.seconds > 0n && d.nanos < 0) || (d.seconds < 0n && d.nanos > 0)) return "seconds and nanos have different signs";
  return undefined;
}

function fraction(ns: bigint): string {
  if (ns === 0n) return "";
  let digits = ns.toString().padStart(9, "0");
  while (digits.endsWith("000")) digits = digits.slice(0, -3);
  return `.${digits}`;
}

/** Protobuf JSON style: "0s", "1.5s", "-0.001s". */
export function formatDuration(ns: Num): string {
  const n = toBig(ns);
  const neg = n < 0n;
  const a = neg ? -n : n;
  return `${neg ? "-" : ""}${a / NS}${fraction(a % NS)}s`;
}

function timestampNs(t: Timestamp): bigint {
  return t.seconds * NS + BigInt(t.nanos);
}

function formatTimestamp(ns: Num): string {
  const n = toBig(ns);
  let sec = n / NS;
  let frac = n % NS;
  if (frac < 0n) {
    frac += NS;
    sec -= 1n;
  }
  const ms = Number(sec) * 1000;
  if (!Number.isFinite(ms) || Math.abs(ms) > 8.64e15) return `${n}ns since the epoch`;
  return new Date(ms).toISOString().replace(".000Z", `${fraction(frac)}Z`);
}

function compileDuration(r: DurationRules, rule: string): ValueCheck | undefined {
  const opt = (n: "const" | "lt" | "lte" | "gt" | "gte"): bigint | undefined => {
    const d = r[n];
    return has(r, n) && d !== undefined ? durationNs(d) : undefined;
  };
  const constVal = opt("const");
  const range = compileRange(rule, { lt: opt("lt"), lte: opt("lte"), gt: opt("gt"), gte: opt("gte") }, formatDuration);
  const inList = r.in.map(durationNs);
  const notIn = r.notIn.map(durationNs);
  return (v, ctx) => {
    const d = v as Duration;
    const problem = durationProblem(d);
    if (problem !== undefined) {
      report(ctx, rule, `value must be a valid duration, got ${d.seconds}s ${d.nanos}ns: ${problem}`);
      return;
    }
    checkComparable(durationNs(d), ctx, rule, formatDuration, constVal, range, inList, notIn);
  };
}

function compileTimestamp(r: TimestampRules, rule: string): ValueCheck | undefined {
  const opt = (n: "const" | "lt" | "lte" | "gt" | "gte"): bigint | undefined => {
    const t = r[n];
    return has(r, n) && t !== undefined ? timestampNs(t) : undefined;
  };
  const constVal = opt("const");
  const range = compileRange(rule, { lt: opt("lt"), lte: opt("lte"), gt: opt("gt"), gte: opt("gte") }, formatTimestamp);
  const ltNow = r.ltNow;
  const gtNow = r.gtNow;
  const within = has(r, "within") && r.within !== undefined ? durationNs(r.within) : undefined;
  return (v, ctx) => {
    const t = v as Timestamp;
    if (t.seconds < MIN_TIMESTAMP_SECONDS || t.seconds > MAX_TIMESTAMP_SECONDS || t.nanos < 0 || t.nanos > 999_999_999) {
      report(ctx, rule, `value must be a valid timestamp (years 1-9999, nanos 0-999999999), got ${t.seconds}s ${t.nanos}ns`);
      return;
    }
    const x = timestampNs(t);
    if (constVal !== undefined && x !== constVal) {
      report(ctx, `${rule}.const`, `value must equal ${formatTimestamp(constVal)}, got ${formatTimestamp(x)}`);
    }
    if (range !== undefined) range(x, ctx);
    if (ltNow || gtNow || within !== undefined) {
      const now = nowNs(ctx);
      if (ltNow && !(x < now)) report(ctx, `${rule}.lt_now`, `value must be before now (${formatTimestamp(now)}), got ${formatTimestamp(x)}`);
      if (gtNow && !(x > now)) report(ctx, `${rule}.gt_now`, `value must be after now (${formatTimestamp(now)}), got ${formatTimestamp(x)}`);
      if (within !== undefined) {
        const delta = x > now ? x - now : now - x;
        if (delta > within) {
          report(ctx, `${rule}.within`, `value must be within ${formatDuration(within)} of now (${formatTimestamp(now)}), got ${formatTimestamp(x)}`);
        }
      }
    }
  };
}
