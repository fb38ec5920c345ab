import { describe, expect, it } from "vitest";
import {
  consulBaseUrl,
  consulOptionsFromConfig,
  parseDuration,
  resolveConsulOptions,
} from "../../src/sources/consul/config.ts";
import { backoffDelay, SlotPool, TokenBucket } from "../../src/sources/consul/pacing.ts";

describe("TokenBucket", () => {
  it("lets a burst through, then one per interval", () => {
    let now = 0;
    const bucket = new TokenBucket(2, 1000, () => now);
    expect(bucket.reserve()).toBe(0);
    expect(bucket.reserve()).toBe(0);
    expect(bucket.reserve()).toBe(1000);
    now = 1000;
    expect(bucket.reserve()).toBe(1000);
    now = 5000;
    expect(bucket.reserve()).toBe(0);
  });
});

describe("backoffDelay", () => {
  it("grows exponentially with jitter and is capped", () => {
    expect(backoffDelay(0, 500, 30_000, () => 0)).toBe(250);
    expect(backoffDelay(0, 500, 30_000, () => 1)).toBe(500);
    expect(backoffDelay(3, 500, 30_000, () => 1)).toBe(4000);
    expect(backoffDelay(20, 500, 30_000, () => 1)).toBe(30_000);
    expect(backoffDelay(20, 500, 30_000, () => 0)).toBe(15_000);
  });
});

describe("SlotPool", () => {
  it("bounds holders and serves waiters in order", async () => {
    const pool = new SlotPool(2);
    expect(pool.reserved).toBe(1);
    const r1 = await pool.acquire(undefined, true);
    const r2 = await pool.acquire(undefined, true);
    expect(r1 && r2).toBeTruthy();
    const order: number[] = [];
    const a = pool.acquire(undefined, true).then((r) => (order.push(1), r));
    const controller = new AbortController();
    const b = pool.acquire(controller.signal, true);
    const c = pool.acquire(undefined, true).then((r) => (order.push(3), r));
    controller.abort();
    expect(await b).toBeNull();
    r1!();
    r1!(); // releasing twice is harmless
    r2!();
    await Promise.all([a, c]);
    expect(order).toEqual([1, 3]);
    expect(pool.maxActive).toBe(2);
    expect(pool.active).toBe(2);
  });

  it("serves plain reads first and keeps reserved slots for them", async () => {
    const pool = new SlotPool(8);
    expect(pool.blockingSlots).toBe(7);
    const blocking = await Promise.all(Array.from({ length: 7 }, () => pool.acquire()));
    // Blocking queries cannot take the reserved slot...
    let eighth = false;
    const late = pool.acquire().then((r) => ((eighth = true), r));
    await Promise.resolve();
    expect(eighth).toBe(false);
    // ...but a plain read can.
    const read = await pool.acquire(undefined, true);
    expect(read).not.toBeNull();
    expect(pool.active).toBe(8);
    // When a slot frees, a waiting plain read goes before the waiting blocking query.
    const order: string[] = [];
    const read2 = pool.acquire(undefined, true).then((r) => (order.push("read"), r));
    blocking[0]!();
    (await read2)!();
    read!();
    await late;
    expect(order).toEqual(["read"]);
    expect(eighth).toBe(true);
    expect(pool.maxActive).toBe(8);
  });

  it("grants plain reads, then sweep reads, then blocking queries", async () => {
    const pool = new SlotPool(8);
    const held = await Promise.all(Array.from({ length: 8 }, () => pool.acquire(undefined, "read")));
    const order: string[] = [];
    const wait = (kind: "read" | "sweep" | "blocking") =>
      pool.acquire(undefined, kind).then((r) => {
        order.push(kind);
        return r;
      });
    const waiting = [wait("blocking"), wait("sweep"), wait("read"), wait("sweep")];
    for (const r of held) r!();
    for (const r of await Promise.all(waiting)) r!();
    expect(order).toEqual(["read", "sweep", "sweep", "blocking"]);
    // Sweep reads may use the reserved slot; blocking queries still may not.
    const sweeps = await Promise.all(Array.from({ length: 8 }, () => pool.acquire(undefined, "sweep")));
    expect(pool.active).toBe(8);
    for (const r of sweeps) r!();
    const blocking = await Promise.all(Array.from({ length: 7 }, () => pool.acquire(undefined, "blocking")));
    let eighth = false;
    const late = pool.acquire(undefined, "blocking").then((r) => ((eighth = true), r));
    await Promise.resolve();
    expect(eighth).toBe(false);
    blocking[0]!();
    (await late)!();
    for (const r of blocking.slice(1)) r!();
    expect(pool.active).toBe(0);
  });

  it("lets many waiters give up their place cheaply", async () => {
    const pool = new SlotPool(2);
    const held = [await pool.acquire(undefined, "read"), await pool.acquire(undefined, "read")];
    const controllers = Array.from({ length: 5000 }, () => new AbortController());
    const waits = controllers.map((c) => pool.acquire(c.signal, "blocking"));
    expect(pool.queued).toBe(5000);
    const started = performance.now();
    for (const c of controllers.slice(0, 4999)) c.abort();
    expect(performance.now() - started).toBeLessThan(200);
    expect(pool.queued).toBe(1);
    held[0]!();
    const results = await Promise.all(waits);
    expect(results.filter((r) => r !== null)).toHaveLength(1);
    expect(pool.active).toBe(2);
  });

  it("a pool of one has no reserve", async () => {
    const pool = new SlotPool(1);
    expect(pool.blockingSlots).toBe(1);
    expect(await pool.acquire()).not.toBeNull();
  });
});

describe("Consul configuration", () => {
  it("parses Consul durations", () => {
    expect(parseDuration("30s")).toBe(30_000);
    expect(parseDuration("1m30s")).toBe(90_000);
    expect(parseDuration("250ms")).toBe(250);
    expect(parseDuration("5")).toBe(5000);
    expect(() => parseDuration("soon")).toThrow();
  });

  it("normalises addresses like Consul's CLI", () => {
    expect(consulBaseUrl("127.0.0.1:8500").toString()).toBe("http://127.0.0.1:8500/v1");
    expect(consulBaseUrl("http://consul").toString()).toBe("http://consul:8500/v1");
    expect(consulBaseUrl("https://consul.example:8501/").toString()).toBe("https://consul.example:8501/v1");
    expect(() => consulBaseUrl("unix:///var/run/consul.sock")).toThrow(/unix/);
  });

  it("is enabled by --consul-addr or CONSUL_HTTP_ADDR, flags first", () => {
    expect(consulOptionsFromConfig({}, {})).toBeNull();
    expect(consulOptionsFromConfig({}, { CONSUL_HTTP_ADDR: "10.0.0.5:8500", CONSUL_HTTP_TOKEN: "s3cret" })).toEqual({
      address: "10.0.0.5:8500",
      token: "s3cret",
    });
    expect(
      consulOptionsFromConfig(
        { consulAddr: "http://a:8500", consulDatacenter: "dc2", consulToken: "flag" },
        { CONSUL_HTTP_ADDR: "b:8500", CONSUL_HTTP_TOKEN: "env" },
      ),
    ).toEqual({ address: "http://a:8500", token: "flag", datacenter: "dc2" });
    expect(
      consulOptionsFromConfig({}, { CONSUL_HTTP_ADDR: "c:8501", CONSUL_HTTP_SSL: "true", CONSUL_DATACENTER: "dc3" }),
    ).toEqual({ address: "https://c:8501", datacenter: "dc3" });
  });

  it("turns change hints on by default, and validates the sweep interval", () => {
    const o = resolveConsulOptions({ address: "x:1" });
    expect(o.changeHints).toBe(true);
    expect(o.sweepIntervalMs).toBe(1000);
    expect(o.serviceFilter("anything")).toBe(true);
    expect(resolveConsulOptions({ address: "x:1", sweepIntervalMs: 0 }).sweepIntervalMs).toBe(0);
    expect(() => resolveConsulOptions({ address: "x:1", sweepIntervalMs: 10 })).toThrow(/sweepIntervalMs/);
  });

  it("rejects a wait outside Consul's limits", () => {
    expect(() => resolveConsulOptions({ address: "x:1", wait: "11m" })).toThrow(/wait/);
    expect(() => resolveConsulOptions({ address: "x:1", wait: "100ms" })).toThrow(/wait/);
    expect(resolveConsulOptions({ address: "x:1" }).waitMs).toBe(30_000);
  });
});
