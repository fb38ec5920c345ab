/**
 * Strict readers for the JSON columns. Each takes the parsed column value and a
 * path naming it ("headers", "selector"), appends one readable line per problem
 * to `issues`, and returns what it could read. Pure: no I/O, no exceptions.
 */
import type { HeaderMatch, QueryParamMatch, StringMatchKind } from "../../model/rules.ts";
import { compareText } from "../../model/order.ts";

const STRING_MATCH_KINDS: readonly StringMatchKind[] = ["exact", "prefix", "suffix", "regex", "present"];

/** An HTTP field-name token (RFC 9110), or an HTTP/2 pseudo-header like ":authority". */
const HEADER_NAME = /^:?[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

type JsonObject = Record<string, unknown>;

export function readStringMap(value: unknown, path: string, issues: string[]): Readonly<Record<string, string>> {
  if (!isObject(value)) {
    issues.push(`${path}: must be a JSON object of strings, got ${jsonType(value)}`);
    return {};
  }
  const entries: [string, string][] = [];
  for (const key of Object.keys(value).sort(compareText)) {
    const v = value[key];
    if (typeof v === "string") entries.push([key, v]);
    else issues.push(`${path}.${key}: must be a string, got ${jsonType(v)}`);
  }
  // fromEntries defines own properties, so a "__proto__" key stays plain data.
  return Object.fromEntries(entries);
}

export function readHeaderMatches(value: unknown, path: string, issues: string[]): HeaderMatch[] {
  return readObjects(value, path, issues, ["name", "match", "value", "invert"], (item, at) => {
    const name = readName(item, at, issues, HEADER_NAME, "an HTTP header name");
    const match = readMatch(item, at, issues);
    const invert = item.invert ?? false;
    if (typeof invert !== "boolean") issues.push(`${at}.invert: must be true or false, got ${jsonType(invert)}`);
    const matchValue = readMatchValue(item, match, at, issues);
    if (name === null || match === null) return null;
    return matchValue === undefined
      ? { name, kind: match, invert: invert === true }
      : { name, kind: match, value: matchValue, invert: invert === true };
  });
}

export function readQueryParamMatches(value: unknown, path: string, issues: string[]): QueryParamMatch[] {
  return readObjects(value, path, issues, ["name", "match", "value"], (item, at) => {
    const name = readName(item, at, issues, /^.+$/s, "a non-empty string");
    const match = readMatch(item, at, issues);
    const matchValue = readMatchValue(item, match, at, issues);
    if (name === null || match === null) return null;
    return matchValue === undefined ? { name, kind: match } : { name, kind: match, value: matchValue };
  });
}

/** Reads a JSON array of objects, refusing unknown keys (they are usually typos). */
function readObjects<T>(
  value: unknown,
  path: string,
  issues: string[],
  keys: readonly string[],
  readOne: (item: JsonObject, at: string) => T | null,
): T[] {
  if (!Array.isArray(value)) {
    issues.push(`${path}: must be a JSON array of objects, got ${jsonType(value)}`);
    return [];
  }
  const out: T[] = [];
  value.forEach((item: unknown, i) => {
    const at = `${path}[${i}]`;
    if (!isObject(item)) {
      issues.push(`${at}: must be a JSON object, got ${jsonType(item)}`);
      return;
    }
    for (const key of Object.keys(item)) {
      if (!keys.includes(key)) issues.push(`${at}: unknown key "${key}" (expected ${keys.join(", ")})`);
    }
    const read = readOne(item, at);
    if (read !== null) out.push(read);
  });
  return out;
}

function readName(item: JsonObject, at: string, issues: string[], pattern: RegExp, what: string): string | null {
  const name = item.name;
  if (typeof name === "string" && pattern.test(name)) return name;
  issues.push(`${at}.name: must be ${what}, got ${show(name)}`);
  return null;
}

function readMatch(item: JsonObject, at: string, issues: string[]): StringMatchKind | null {
  const match = item.match;
  const kind = STRING_MATCH_KINDS.find((k) => k === match);
  if (kind) return kind;
  issues.push(`${at}.match: must be one of ${STRING_MATCH_KINDS.join(", ")}, got ${show(match)}`);
  return null;
}

/** "present" takes no value; "exact" may match the empty string; others need text. */
function readMatchValue(
  item: JsonObject,
  match: StringMatchKind | null,
  at: string,
  issues: string[],
): string | undefined {
  const value = item.value;
  if (match === "present") {
    if (value !== undefined) issues.push(`${at}.value: not allowed with match "present"`);
    return undefined;
  }
  if (match === null) return undefined;
  if (typeof value !== "string") {
    issues.push(`${at}.value: required with match "${match}", must be a string, got ${show(value)}`);
    return undefined;
  }
  if (value === "" && match !== "exact") {
    issues.push(`${at}.value: must not be empty with match "${match}"`);
    return undefined;
  }
  return value;
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function jsonType(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

function show(value: unknown): string {
  return typeof value === "string" ? JSON.stringify(value) : jsonType(value);
}
