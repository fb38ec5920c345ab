/** The pure parts of the PostgreSQL source: row parsers, status diffing, coalescing. */
import { describe, expect, it } from "vitest";
import type { RuleSet } from "../../src/model/rules.ts";
import { CoalescingRunner } from "../../src/sources/postgres/coalesce.ts";
import { deepEqual } from "../../src/sources/postgres/equal.ts";
import { desiredRuleStatus, parseRegistry, parseRules } from "../../src/sources/postgres/index.ts";
import { ruleStatusWrite, type RuleStatusRow } from "../../src/sources/postgres/rule-status.ts";
import { detectBackend, errorMessage, type StoreLogger } from "../../src/sources/postgres/options.ts";
import type { HttpRouteRow, InstanceRow } from "../../src/sources/postgres/rows.ts";
import { httpRouteRow, sleep } from "./helpers.ts";

const route = httpRouteRow;

const instance = (over: Partial<InstanceRow> = {}): InstanceRow => ({
  id: "i1",
  service: "web",
  address: "10.0.0.1",
  port: 80,
  mesh_port: null,
  labels: {},
  region: "",
  zone: "",
  weight: 1,
  health: "healthy",
  ...over,
});

const rulesOf = (routes: HttpRouteRow[]): RuleSet =>
  parseRules({ subsets: [], httpRoutes: routes, httpRouteDestinations: [] });

describe("parseRules", () => {
  it("reads every header match kind", () => {
    const rules = rulesOf([
      route({
        headers: [
          { name: "x-a", match: "exact", value: "" },
          { name: ":authority", match: "suffix", value: ".example.com" },
          { name: "x-b", match: "regex", value: "^v[0-9]+$", invert: true },
          { name: "x-c", match: "present" },
        ],
      }),
    ]);
    expect(rules.rejected).toEqual([]);
    expect(rules.httpRoutes[0]!.headers).toEqual([
      { name: "x-a", kind: "exact", value: "", invert: false },
      { name: ":authority", kind: "suffix", value: ".example.com", invert: false },
      { name: "x-b", kind: "regex", value: "^v[0-9]+$", invert: true },
      { name: "x-c", kind: "present", invert: false },
    ]);
  });

  it.each([
    [{ headers: {} }, "headers: must be a JSON array of objects, got an object"],
    [{ headers: ["x-user"] }, 'headers[0]: must be a JSON object, got a string'],
    [{ headers: [{ name: "bad name", match: "exact", value: "a" }] }, 'headers[0].name: must be an HTTP header name, got "bad name"'],
    [{ headers: [{ name: "x", match: "exact" }] }, 'headers[0].value: required with match "exact", must be a string, got nothing'],
    [{ headers: [{ name: "x", match: "present", value: "1" }] }, 'headers[0].value: not allowed with match "present"'],
    [{ headers: [{ name: "x", match: "prefix", value: "" }] }, 'headers[0].value: must not be empty with match "prefix"'],
    [{ headers: [{ name: "x", match: "exact", value: "a", invert: "yes" }] }, "headers[0].invert: must be true or false, got a string"],
    [{ query_params: [{ name: "", match: "exact", value: "1" }] }, 'query_params[0].name: must be a non-empty string, got ""'],
    [{ query_params: [{ name: "q", match: "exact", value: 1 }] }, 'query_params[0].value: required with match "exact", must be a string, got a number'],
    [{ query_params: [{ name: "q", match: "present", invert: true }] }, 'query_params[0]: unknown key "invert" (expected name, match, value)'],
    [{ path_match: "prefix", path: null }, "path: required when path_match is set"],
    [{ retry_on: ["5xx"], retry_attempts: null }, "retry_on, retry_attempts: set both or neither"],
  ] as [Partial<HttpRouteRow>, string][])("rejects %j", (over, message) => {
    const rules = rulesOf([route({ id: "7", ...over }), route({ id: "8" })]);
    expect(rules.httpRoutes.map((r) => r.id)).toEqual(["8"]);
    expect(rules.rejected).toEqual([{ kind: "http_route", id: "7", message }]);
  });

  it("joins every problem of a row into one message", () => {
    const rules = rulesOf([route({ headers: [{ name: 1, match: "x" }] })]);
    expect(rules.rejected[0]!.message).toBe(
      "headers[0].name: must be an HTTP header name, got a number; " +
        'headers[0].match: must be one of exact, prefix, suffix, regex, present, got "x"',
    );
  });

  it("rejects a subset whose selector is not a string map", () => {
    const rules = parseRules({
      subsets: [
        { service: "web", name: "v1", selector: { version: 1 } },
        { service: "web", name: "v2", selector: { version: "v2" } },
      ],
      httpRoutes: [],
      httpRouteDestinations: [],
    });
    expect(rules.subsets).toEqual([{ service: "web", name: "v2", selector: { version: "v2" } }]);
    expect(rules.rejected).toEqual([{ kind: "subset", id: "web/v1", message: "selector.version: must be a string, got a number" }]);
  });

  it("orders routes by numeric id whatever the row order", () => {
    const rules = rulesOf([route({ id: "10" }), route({ id: "9" }), route({ id: "100" })]);
    expect(rules.httpRoutes.map((r) => r.id)).toEqual(["9", "10", "100"]);
  });

  it("keeps a __proto__ label as plain data", () => {
    const labels = JSON.parse('{"__proto__": "x", "a": "b"}') as unknown;
    const state = parseRegistry({ services: [{ name: "web", protocol: "http", port: 80 }], instances: [instance({ labels })] }).state;
    const parsed = state.services.get("web")!.instances[0]!.labels;
    expect(Object.keys(parsed)).toEqual(["__proto__", "a"]);
    expect(Object.getPrototypeOf(parsed)).toBe(Object.prototype);
  });
});

describe("parseRegistry", () => {
  it("sorts services and instances by code unit and reports orphans", () => {
    const { state, problems } = parseRegistry({
      services: [
        { name: "b", protocol: "grpc", port: 9000 },
        { name: "a", protocol: "http", port: 80 },
      ],
      instances: [instance({ id: "b-2", service: "b" }), instance({ id: "B-1", service: "b" }), instance({ id: "x", service: "gone" })],
    });
    expect([...state.services.keys()]).toEqual(["a", "b"]);
    expect(state.services.get("b")!.instances.map((i) => i.id)).toEqual(["B-1", "b-2"]);
    expect(problems).toEqual(['instances x: service "gone" is not in mesh.services']);
  });
});

describe("desiredRuleStatus", () => {
  it("accepts every rule that is not rejected and merges messages", () => {
    const rules: RuleSet = {
      subsets: [{ service: "web", name: "v1", selector: {} }],
      httpRoutes: rulesOf([route({ id: "1" }), route({ id: "2" })]).httpRoutes,
      rejected: [{ kind: "http_route", id: "3", message: "headers: bad" }],
    };
    expect(
      desiredRuleStatus(rules, [
        { kind: "http_route", id: "2", message: "weights add up to 0" },
        { kind: "http_route", id: "2", message: "unknown subset web/v9" },
        { kind: "http_route", id: "2", message: "unknown subset web/v9" },
      ]),
    ).toEqual([
      { kind: "subset", ruleId: "web/v1", state: "accepted", message: "" },
      { kind: "http_route", ruleId: "1", state: "accepted", message: "" },
      { kind: "http_route", ruleId: "3", state: "rejected", message: "headers: bad" },
      { kind: "http_route", ruleId: "2", state: "rejected", message: "weights add up to 0; unknown subset web/v9" },
    ]);
  });
});

describe("ruleStatusWrite", () => {
  const accepted = (ruleId: string): RuleStatusRow => ({ kind: "http_route", ruleId, state: "accepted", message: "" });
  const rejected = (ruleId: string, message: string): RuleStatusRow => ({ kind: "http_route", ruleId, state: "rejected", message });

  it("writes everything, and deletes every other row, when what the table holds is unknown", () => {
    const desired = [accepted("1"), rejected("2", "weights add up to 0")];
    const { upsert, remove } = ruleStatusWrite(null, desired);
    expect({ upsert, remove }).toEqual({ upsert: desired, remove: "all-but-upserted" });
  });

  it("afterwards writes only rows whose state or message changed, and deletes only rows of rules that are gone", () => {
    const written = ruleStatusWrite(null, [accepted("1"), accepted("2"), rejected("3", "no destinations"), accepted("4")]).next;
    const subset: RuleStatusRow = { kind: "subset", ruleId: "4", state: "accepted", message: "" };
    const desired = [accepted("1"), rejected("2", "weights add up to 0"), rejected("3", "unknown subset web/v9"), subset, accepted("5")];
    const { upsert, remove, next } = ruleStatusWrite(written, desired);
    // Route 4 is gone; subset "4" is another rule that happens to share its id.
    expect({ upsert, remove }).toEqual({
      upsert: [rejected("2", "weights add up to 0"), rejected("3", "unknown subset web/v9"), subset, accepted("5")],
      remove: [accepted("4")],
    });
    // Once that write has succeeded, the same rows again send nothing.
    const again = ruleStatusWrite(next, desired);
    expect({ upsert: again.upsert, remove: again.remove }).toEqual({ upsert: [], remove: [] });
  });
});

describe("CoalescingRunner", () => {
  it("never overlaps runs and folds a burst into one extra run", async () => {
    let running = 0;
    let runs = 0;
    const runner = new CoalescingRunner(async () => {
      running++;
      expect(running).toBe(1);
      runs++;
      await sleep(20);
      running--;
    });
    const calls = Array.from({ length: 50 }, () => runner.run());
    await Promise.all(calls);
    expect(runs).toBe(2);
    await runner.run();
    expect(runs).toBe(3);
  });

  it("rejects the callers of a failed run and recovers", async () => {
    let fail = true;
    const runner = new CoalescingRunner(async () => {
      if (fail) throw new Error("boom");
    });
    await expect(runner.run()).rejects.toThrow("boom");
    fail = false;
    await expect(runner.run()).resolves.toBeUndefined();
    await runner.whenIdle();
  });
});

describe("helpers", () => {
  it("deepEqual compares maps, arrays and objects structurally", () => {
    expect(deepEqual(new Map([["a", { x: [1, 2] }]]), new Map([["a", { x: [1, 2] }]]))).toBe(true);
    expect(deepEqual(new Map([["a", 1]]), new Map([["b", 1]]))).toBe(false);
    expect(deepEqual({ a: undefined }, { b: undefined })).toBe(false);
    expect(deepEqual([1], { 0: 1 })).toBe(false);
    expect(deepEqual({ a: null }, { a: null })).toBe(true);
  });

  it("detects PGlite from version()", () => {
    expect(detectBackend("PostgreSQL 18.6 (PGlite 0.5.14) on wasm32-unknown-emscripten")).toBe("pglite");
    expect(detectBackend("PostgreSQL 15.14 (Debian 15.14-0+deb12u1) on x86_64-pc-linux-gnu")).toBe("postgres");
  });

  it("describes Node's AggregateError connection failures", () => {
    const err = new AggregateError([Object.assign(new Error("connect ECONNREFUSED ::1:5432"), { code: "ECONNREFUSED" })], "");
    expect(errorMessage(err)).toBe("connect ECONNREFUSED ::1:5432");
  });
});

describe("StoreLogger", () => {
  it("accepts a pino logger", async () => {
    const { pino } = await import("pino");
    const logger: StoreLogger = pino({ enabled: false });
    expect(() => logger.warn({ part: "poll" }, "x")).not.toThrow();
  });
});
