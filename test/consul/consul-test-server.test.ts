/**
 * The Consul test server follows Consul's documented HTTP semantics; these tests
 * pin the ones the source relies on, plus the server's own test knobs, and run
 * the source against the knobs that only this server has (native index rewind,
 * ACL enforcement).
 */
import http from "node:http";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ConsulTestServer } from "./consul-test-server.ts";
import { ConsulAdmin } from "./handle.ts";
import { delay, eventually, Observer } from "./observer.ts";

let server: ConsulTestServer;
let admin: ConsulAdmin;

async function get(path: string, headers: Record<string, string> = {}) {
  const started = performance.now();
  const res = await fetch(new URL(path, server.address), { headers });
  const text = await res.text();
  return {
    status: res.status,
    index: res.headers.get("x-consul-index"),
    headers: res.headers,
    text,
    body: parseMaybe(text),
    ms: performance.now() - started,
  };
}

function parseMaybe(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

async function put(path: string, body?: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(new URL(path, server.address), {
    method: "PUT",
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, text: await res.text() };
}

beforeEach(async () => {
  server = await ConsulTestServer.start();
  admin = new ConsulAdmin(server.address, undefined);
});
afterEach(async () => {
  await server.close();
});

describe("Consul test server: reads and indexes", () => {
  it("answers every read with an X-Consul-Index of at least 1", async () => {
    const empty = await get("/v1/health/service/nothing");
    expect(empty.status).toBe(200);
    expect(empty.body).toEqual([]);
    expect(Number(empty.index)).toBeGreaterThanOrEqual(1);
    const catalog = await get("/v1/catalog/services");
    expect(catalog.body).toEqual({});
    expect(Number(catalog.index)).toBeGreaterThanOrEqual(1);
  });

  it("returns Consul's health/service shape", async () => {
    await admin.register({
      node: "n1",
      nodeAddress: "10.0.0.1",
      nodeMeta: { rack: "r1" },
      id: "web-1",
      service: "web",
      port: 8080,
      tags: ["v1"],
      meta: { version: "1" },
      weights: { Passing: 3, Warning: 1 },
      checks: [{ id: "web-1-ttl", status: "warning", output: "slow" }],
    });
    const res = await get("/v1/health/service/web");
    expect(res.body).toMatchObject([
      {
        Node: { Node: "n1", Address: "10.0.0.1", Datacenter: "dc1", Meta: { rack: "r1" } },
        Service: {
          ID: "web-1",
          Service: "web",
          Kind: "",
          Tags: ["v1"],
          Address: "",
          Port: 8080,
          Meta: { version: "1" },
          Weights: { Passing: 3, Warning: 1 },
        },
        Checks: [{ CheckID: "web-1-ttl", Status: "warning", Output: "slow", ServiceID: "web-1", ServiceName: "web" }],
      },
    ]);
    expect((await get("/v1/catalog/services")).body).toEqual({ web: ["v1"] });
  });

  it("blocks until the query's index moves, and only then", async () => {
    await admin.register({ node: "n1", id: "a-1", service: "a", port: 1 });
    await admin.register({ node: "n1", id: "b-1", service: "b", port: 1 });
    const first = await get("/v1/health/service/a");
    const blocked = get(`/v1/health/service/a?index=${first.index}&wait=5s`);
    let settled = false;
    void blocked.then(() => (settled = true));
    // A write to another service does not release it, nor does an idempotent one.
    await admin.register({ node: "n1", id: "b-2", service: "b", port: 1 });
    await admin.register({ node: "n1", id: "a-1", service: "a", port: 1 });
    await delay(200);
    expect(settled).toBe(false);
    await admin.register({ node: "n1", id: "a-2", service: "a", port: 1 });
    const res = await blocked;
    expect(Number(res.index)).toBeGreaterThan(Number(first.index));
    expect((res.body as unknown[]).length).toBe(2);
  });

  it("returns after wait (plus at most wait/16) with the same index when nothing changed", async () => {
    const first = await get("/v1/catalog/services");
    const res = await get(`/v1/catalog/services?index=${first.index}&wait=300ms`);
    expect(res.index).toBe(first.index);
    expect(res.ms).toBeGreaterThanOrEqual(290);
    expect(res.ms).toBeLessThan(300 + 300 / 16 + 150);
  });

  it("a check change moves the health index but not the catalog index", async () => {
    await admin.register({ node: "n1", id: "a-1", service: "a", port: 1, checks: [{ id: "c", status: "passing" }] });
    const catalog = await get("/v1/catalog/services");
    const health = await get("/v1/health/service/a");
    await admin.setCheck("n1", "c", "a-1", "critical");
    expect((await get("/v1/catalog/services")).index).toBe(catalog.index);
    expect(Number((await get("/v1/health/service/a")).index)).toBeGreaterThan(Number(health.index));
  });

  it("a deregistered service answers [] and releases its blocked queries", async () => {
    await admin.register({ node: "n1", id: "a-1", service: "a", port: 1 });
    const first = await get("/v1/health/service/a");
    const blocked = get(`/v1/health/service/a?index=${first.index}&wait=5s`);
    await delay(50);
    await admin.deregister("n1", "a-1");
    const res = await blocked;
    expect(res.body).toEqual([]);
    expect(Number(res.index)).toBeGreaterThan(Number(first.index));
  });

  it("lists checks by state with the checks index; a blocking query wakes only for its state", async () => {
    await admin.register({ node: "n1", id: "a-1", service: "a", port: 1, checks: [{ id: "ca", status: "passing" }] });
    await admin.register({ node: "n2", id: "b-1", service: "b", port: 1, checks: [{ id: "cb", status: "critical" }] });
    const first = await get("/v1/health/state/critical");
    expect(first.body).toMatchObject([
      { Node: "n2", CheckID: "cb", Status: "critical", ServiceID: "b-1", ServiceName: "b" },
    ]);
    const any = await get("/v1/health/state/any");
    expect((any.body as Array<{ CheckID: string }>).map((c) => c.CheckID)).toEqual(["ca", "cb", "serfHealth"]);
    // Consul answers with the index of the whole checks table...
    expect(any.index).toBe(first.index);

    // ...but wakes a blocking query only when its part of the table changes: a
    // passing check's new output does not release a query on critical checks.
    const blocked = get(`/v1/health/state/critical?index=${first.index}&wait=5s`);
    let settled = false;
    void blocked.then(() => (settled = true));
    await delay(50);
    await admin.setCheck("n1", "ca", "a-1", "passing", "new output");
    await delay(200);
    expect(settled).toBe(false);
    await admin.setCheck("n1", "ca", "a-1", "critical");
    const woke = await blocked;
    expect((woke.body as unknown[]).length).toBe(2);
    expect(Number(woke.index)).toBeGreaterThan(Number(first.index));

    // An index the checks table already passed answers at once, changed or not.
    await admin.setCheck("n1", "ca", "a-1", "critical", "other output");
    const immediate = await get(`/v1/health/state/critical?index=${woke.index}&wait=5s`);
    expect(immediate.ms).toBeLessThan(1000);
    expect(Number(immediate.index)).toBeGreaterThan(Number(woke.index));
    expect((await get("/v1/health/state/bogus")).status).toBe(400);
  });

  it("rejects a malformed index and an unknown datacenter", async () => {
    expect((await get("/v1/catalog/services?index=abc")).status).toBe(400);
    const dc = await get("/v1/catalog/services?dc=elsewhere");
    expect(dc.status).toBe(500);
    expect(dc.text).toBe("No path to datacenter");
  });
});

describe("Consul test server: agent endpoints", () => {
  it("registers with TTL checks, updates them, toggles maintenance, deregisters", async () => {
    expect(
      (await put("/v1/agent/service/register", { Name: "api", ID: "api-1", Port: 9000, Check: { TTL: "30s" } })).status,
    ).toBe(200);
    const checks = async () =>
      ((await get("/v1/health/service/api")).body as Array<{ Checks: Array<{ CheckID: string; Status: string }> }>)[0]!
        .Checks.map((c) => `${c.CheckID}=${c.Status}`);
    // TTL checks start critical.
    expect(await checks()).toEqual(["serfHealth=passing", "service:api-1=critical"]);
    await put("/v1/agent/check/update/service:api-1", { Status: "passing", Output: "ok" });
    expect(await checks()).toEqual(["serfHealth=passing", "service:api-1=passing"]);
    await put("/v1/agent/service/maintenance/api-1?enable=true&reason=deploy");
    expect(await checks()).toContain("_service_maintenance:api-1=critical");
    await put("/v1/agent/service/maintenance/api-1?enable=false");
    await put("/v1/agent/maintenance?enable=true");
    expect(await checks()).toContain("_node_maintenance=critical");
    await put("/v1/agent/maintenance?enable=false");
    expect(await checks()).toEqual(["serfHealth=passing", "service:api-1=passing"]);
    expect((await put("/v1/agent/service/deregister/api-1")).status).toBe(200);
    expect((await get("/v1/health/service/api")).body).toEqual([]);
    expect((await put("/v1/agent/service/deregister/api-1")).status).toBe(404);
  });

  it("requires a destination for connect-proxy registrations", async () => {
    const res = await put("/v1/agent/service/register", { Name: "p", Kind: "connect-proxy", Port: 21000 });
    expect(res.status).toBe(400);
  });
});

describe("Consul test server: knobs", () => {
  it("rewindIndex answers blocked queries with a lower index and continues from there", async () => {
    await admin.register({ node: "n1", id: "a-1", service: "a", port: 1 });
    for (let i = 0; i < 5; i++) await admin.register({ node: "n1", id: `x-${i}`, service: "x", port: 1 });
    const first = await get("/v1/catalog/services");
    const blocked = get(`/v1/catalog/services?index=${first.index}&wait=5s`);
    await delay(50);
    server.rewindIndex(2);
    const res = await blocked;
    expect(Number(res.index)).toBeLessThan(Number(first.index));
    await admin.register({ node: "n1", id: "a-2", service: "a", port: 1 });
    expect(Number((await get("/v1/catalog/services")).index)).toBe(3);
  });

  it("snapshot restore puts data and indexes back; later writes continue above", async () => {
    await admin.register({ node: "n1", id: "a-1", service: "a", port: 1 });
    const snap = await fetch(new URL("/v1/snapshot", server.address)).then((r) => r.text());
    const at = (await get("/v1/catalog/services")).index;
    await admin.register({ node: "n1", id: "b-1", service: "b", port: 1 });
    const high = Number((await get("/v1/catalog/services")).index);
    await fetch(new URL("/v1/snapshot", server.address), { method: "PUT", body: snap });
    const restored = await get("/v1/catalog/services");
    expect(restored.body).toEqual({ a: [] });
    expect(restored.index).toBe(at);
    await admin.register({ node: "n1", id: "c-1", service: "c", port: 1 });
    expect(Number((await get("/v1/catalog/services")).index)).toBeGreaterThan(high);
  });

  it("injects faults into reads, also into queries already blocked", async () => {
    const first = await get("/v1/catalog/services");
    const blocked = get(`/v1/catalog/services?index=${first.index}&wait=5s`);
    await delay(50);
    server.faults.set("garbage");
    const garbage = await blocked;
    expect(garbage.status).toBe(200);
    expect(() => JSON.parse(garbage.text)).toThrow();
    server.faults.set("error500");
    expect((await get("/v1/health/service/a")).status).toBe(500);
    server.faults.set("wrong-shape");
    expect((await get("/v1/health/service/a")).body).toEqual({ unexpected: true });
    server.faults.set("reset");
    await expect(get("/v1/catalog/services")).rejects.toThrow();
    server.faults.set("none");
    expect((await get("/v1/catalog/services")).status).toBe(200);
  });

  it("stops and resumes listening on the same port", async () => {
    await server.stopListening();
    await expect(get("/v1/catalog/services")).rejects.toThrow();
    await server.resumeListening();
    expect((await get("/v1/catalog/services")).status).toBe(200);
  });

  it("counts concurrent connections and requests", async () => {
    const first = await get("/v1/catalog/services");
    const agent = new http.Agent({ keepAlive: true, maxSockets: 5 });
    server.stats.reset();
    const before = server.stats.connections;
    const requests = Array.from(
      { length: 12 },
      () =>
        new Promise<void>((resolve, reject) => {
          http
            .get(`${server.address}/v1/catalog/services?index=${first.index}&wait=200ms`, { agent }, (res) => {
              res.resume();
              res.on("end", () => resolve());
            })
            .on("error", reject);
        }),
    );
    await Promise.all(requests);
    expect(server.stats.maxConnections - before).toBe(5);
    expect(server.stats.maxRequestsInFlight).toBe(5);
    agent.destroy();
  });
});

describe("Consul test server: ACLs", () => {
  let acl: ConsulTestServer;
  beforeEach(async () => {
    acl = await ConsulTestServer.start({ aclToken: "root-token" });
    await fetch(new URL("/v1/catalog/register", acl.address), {
      method: "PUT",
      headers: { "X-Consul-Token": "root-token" },
      body: JSON.stringify({ Node: "n1", Address: "10.0.0.1", Service: { ID: "web-1", Service: "web", Port: 80 } }),
    });
  });
  afterEach(async () => {
    await acl.close();
  });

  it("filters results for no token, refuses an unknown one, serves the right one", async () => {
    const anon = await fetch(new URL("/v1/catalog/services", acl.address));
    expect(await anon.json()).toEqual({});
    expect(anon.headers.get("x-consul-results-filtered-by-acls")).toBe("true");
    const wrong = await fetch(new URL("/v1/catalog/services", acl.address), { headers: { "X-Consul-Token": "nope" } });
    expect(wrong.status).toBe(403);
    expect(await wrong.text()).toBe("ACL not found");
    const right = await fetch(new URL("/v1/catalog/services", acl.address), {
      headers: { "X-Consul-Token": "root-token" },
    });
    expect(await right.json()).toEqual({ web: [] });
  });

  it("the source sends CONSUL_HTTP_TOKEN's token, and reports a wrong one as degraded", async () => {
    const good = new Observer({ address: acl.address, token: "root-token", wait: "5s", coalesceMs: 5 });
    await good.start();
    expect([...good.latest!.services.keys()]).toEqual(["web"]);
    await good.stop();

    const bad = new Observer({ address: acl.address, token: "nope", wait: "5s", initialSyncTimeoutMs: 300 });
    await bad.start();
    await eventually(() => bad.source.status().degraded, 2000, "degraded");
    expect(bad.source.status().lastError).toMatch(/403/);
    await bad.stop();
  });
});

describe("the source against the server's own index rewind", () => {
  it("resets its index and keeps receiving updates", async () => {
    await admin.register({ node: "n1", id: "a-1", service: "a", port: 1 });
    for (let i = 0; i < 10; i++) await admin.register({ node: "n1", id: `x-${i}`, service: "x", port: 1 });
    const o = new Observer({ address: server.address, wait: "10s", coalesceMs: 5 });
    await o.start();
    const before = Number(o.source.status().revision);
    await eventually(() => server.stats.requestsInFlight >= 3, 2000, "blocking queries");
    server.rewindIndex(1);
    await eventually(() => o.source.stats().indexResets >= 3, 2000, "every watch reset");
    expect(Number(o.source.status().revision)).toBeLessThan(before);
    for (let i = 2; i <= 4; i++) {
      await admin.register({ node: "n1", id: `a-${i}`, service: "a", port: 1 });
      await o.until((s) => s.services.get("a")?.instances.length === i, 2000, `instance ${i}`);
    }
    await o.stop();
  });
});
