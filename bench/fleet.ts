/**
 * Fleet benchmark: Signalbox (real PostgreSQL, LISTEN/NOTIFY) and the floor
 * server (bench/floor-proc.ts), each in its own process, serving N simulated
 * Envoys spread over worker processes (bench/envoy-worker.ts), with state of the
 * world and delta xDS. For every run it reports:
 *   - time to connect N proxies and converge them (all four types ACKed);
 *   - control-plane RSS (and heap) per connected proxy;
 *   - convergence p50/p99/max after an endpoint change (an instance of the
 *     service every proxy calls moves) and after a rule change (a new route for
 *     it), committed in PostgreSQL (Signalbox) or ordered over IPC (floor),
 *     measured from the commit and from the moment the push starts;
 *   - responses and bytes per proxy per change (1 response = no redundant push);
 *   - control-plane CPU per change (idle rate subtracted): the first change
 *     of each kind apart from the later (steady) ones, which the CPU columns
 *     and ratios average (latency and responses take every change);
 *   - a scoped endpoint change (a service few others call): proxies that got
 *     any response vs proxies that depend on it.
 *
 *   npm run bench -- --n 1000,5000,10000 --protocols sotw,delta --servers floor,signalbox
 *
 * Options: --endpoint-changes 7 --rule-changes 5 (first included; more steady changes average over the full collections, which run every second or third change) --debounce-ms 50 --max-delay-ms 250
 *          --profile (CPU profiles of one endpoint and one rule change at the largest N)
 *          --server-flags "--trace-opt --trace-deopt" (more V8 flags for both servers, for diagnosis;
 *            their output goes to this process's stdout; leave it out when measuring)
 *          --dependencies 0 (services declare none, so every proxy holds the whole mesh; default: 5 each)
 *          --skip-translate  --out bench/results
 * PostgreSQL: DATABASE_URL, or a throwaway cluster like the tests (needs the
 * Debian postgresql package). Not part of the test suite.
 */
import { fork, type ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync, readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import type { TestProject } from "vitest/node";
import { migrate } from "../src/sources/postgres/migrate.ts";
import setupPostgres from "../test/support/global-setup.ts";
import type { FromWorker, ToWorker, WorkerProxy } from "./envoy-worker.ts";
import {
  APP_PORT,
  applyChangeSql,
  dependentsOf,
  endpointChange,
  fleetMeshSpec,
  INBOUND_PORT,
  leastCalledService,
  meshRows,
  ruleChange,
  seed,
  serviceName,
  type Change,
  type MeshSpec,
} from "./mesh.ts";
import type { ServerStats } from "./proc-common.ts";
import { markdown as profileMarkdown, summarize } from "./profile-summary.ts";
import { f0, f1, f2, percentiles, type Percentiles } from "./stats.ts";
import { flag, numberOption, option } from "./cli.ts";
import { SERVER_NODE_FLAGS } from "../src/cli/node-flags.ts";
import type { TranslateResult } from "./translate-bench.ts";
import { translationTable } from "./translate-table.ts";
import { nowMs } from "./wire.ts";

const here = dirname(fileURLToPath(import.meta.url));

// --- options -------------------------------------------------------------------

const SIZES = option("n", "1000,5000,10000").split(",").map(Number);
const PROTOCOLS = option("protocols", "sotw,delta").split(",") as Array<"sotw" | "delta">;
const SERVERS = option("servers", "floor,signalbox").split(",") as Array<"floor" | "signalbox">;
/** Changes of each kind; the first of each is reported apart from the rest (see pooled). */
const ENDPOINT_CHANGES = numberOption("endpoint-changes", 7);
/** Dependencies each service declares; 0: none, so every proxy holds the whole mesh (the default when a mesh declares none). */
const DEPENDENCIES = numberOption("dependencies", -1);
const RULE_CHANGES = numberOption("rule-changes", 5);
const DEBOUNCE_MS = numberOption("debounce-ms", 50);
const MAX_DELAY_MS = numberOption("max-delay-ms", 250);
const OUT = option("out", join(here, "results"));
const PROXIES_PER_WORKER = numberOption("proxies-per-worker", 2500);
const STREAMS_PER_CHANNEL = numberOption("streams-per-channel", 250);
const PROFILE = flag("profile");
const EXTRA_SERVER_FLAGS = option("server-flags", "").split(" ").filter((each) => each !== "");
const PUSH_BATCH = numberOption("push-batch", 0);
const PUSH_SLICE_MS = numberOption("push-slice-ms", 0);

// --- child processes -----------------------------------------------------------

type AnyMessage = { type: string } & Record<string, unknown>;

class Child {
  readonly proc: ChildProcess;
  private readonly queue: AnyMessage[] = [];
  private waiters: Array<{ type: string; resolve: (m: AnyMessage) => void }> = [];
  readonly errors: string[] = [];

  constructor(readonly label: string, file: string, execArgv: string[] = [], args: string[] = []) {
    this.proc = fork(join(here, file), args, {
      execArgv: ["--import", "tsx", ...execArgv],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      serialization: "advanced",
    });
    this.proc.on("message", (message: AnyMessage) => {
      if (message.type === "error") {
        if (this.errors.length < 5) console.error(`[${label}] ${String(message.message)}`);
        this.errors.push(String(message.message));
        return;
      }
      const index = this.waiters.findIndex((w) => w.type === message.type);
      if (index >= 0) {
        const [waiter] = this.waiters.splice(index, 1);
        waiter?.resolve(message);
      } else {
        this.queue.push(message);
      }
    });
  }

  send(message: object): void {
    this.proc.send(message);
  }

  waitFor<T extends AnyMessage>(type: string, timeoutMs = 120_000): Promise<T> {
    const index = this.queue.findIndex((m) => m.type === type);
    if (index >= 0) return Promise.resolve(this.queue.splice(index, 1)[0] as T);
    return new Promise<T>((resolve, reject) => {
      const waiter = { type, resolve: resolve as (m: AnyMessage) => void };
      this.waiters.push(waiter);
      setTimeout(() => {
        if (!this.waiters.includes(waiter)) return;
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`${this.label}: no "${type}" within ${timeoutMs} ms`));
      }, timeoutMs).unref();
    });
  }

  async request<T extends AnyMessage>(message: { type: string; [key: string]: unknown }, reply: string, timeoutMs?: number): Promise<T> {
    const waiting = this.waitFor<T>(reply, timeoutMs);
    this.send(message);
    return waiting;
  }

  kill(): void {
    if (this.proc.exitCode === null) this.proc.kill("SIGKILL");
  }
}

async function stats(server: Child): Promise<ServerStats> {
  return (await server.request<{ type: "stats"; stats: ServerStats }>({ type: "stats" }, "stats")).stats;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// --- one run ---------------------------------------------------------------------

interface ChangeResult {
  readonly kind: "endpoint" | "rule";
  readonly scoped: boolean;
  /** The first change of its kind in the run (see pooled). */
  readonly first: boolean;
  /** Measured under the profiler: left out of the table. */
  readonly profiled: boolean;
  readonly expected: number;
  readonly converged: number;
  readonly fromCommit: Percentiles;
  readonly fromPush: Percentiles;
  readonly pushDelayMs: number;
  readonly cpuMs: number;
  /** Of cpuMs, the main thread's (the rest ran on V8's background threads: parallel and concurrent GC, JIT compilation). */
  readonly mainMs: number;
  /** Of cpuMs, what the cache spent on the new snapshot (translating, encoding, validating); 0 for the floor. */
  readonly translateCpuMs: number;
  readonly responsesPerProxy: number;
  readonly maxResponses: number;
  readonly bytesPerProxy: number;
  readonly affected: number;
  readonly totalResponses: number;
  /** CPU the simulated fleet spent from the announcement to the counters (all worker processes). */
  readonly fleetCpuMs: number;
}

interface RunResult {
  readonly n: number;
  readonly protocol: "sotw" | "delta";
  readonly server: "floor" | "signalbox";
  readonly services: number;
  readonly connect: Percentiles & { readonly allMs: number; readonly missing: number };
  readonly rssBeforeMB: number;
  readonly rssAfterMB: number;
  readonly rssPerProxyKB: number;
  readonly heapPerProxyKB: number;
  readonly idleCpuMsPerS: number;
  readonly changes: ChangeResult[];
  readonly profiles: Record<string, string>;
  readonly workerErrors: number;
}

interface PlannedChange {
  readonly change: Change;
  readonly scoped: boolean;
  readonly first: boolean;
  /** Run under the CPU profiler, after the measured changes, and left out of the table. */
  readonly profile: boolean;
}

function plannedChanges(spec: MeshSpec, profile: boolean): PlannedChange[] {
  const rows = meshRows(spec);
  const shared = serviceName(0);
  const out: PlannedChange[] = [];
  let sequence = 1;
  for (let i = 0; i < ENDPOINT_CHANGES; i++) out.push({ change: endpointChange(shared, sequence++), scoped: false, first: i === 0, profile: false });
  out.push({ change: endpointChange(leastCalledService(rows), sequence++), scoped: true, first: false, profile: false });
  for (let i = 0; i < RULE_CHANGES; i++) out.push({ change: ruleChange(shared, sequence++), scoped: false, first: i === 0, profile: false });
  if (profile) {
    out.push({ change: endpointChange(shared, sequence++), scoped: false, first: false, profile: true });
    out.push({ change: ruleChange(shared, sequence), scoped: false, first: false, profile: true });
  }
  return out;
}

async function createDatabase(serverUrl: string, name: string): Promise<string> {
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function dropDatabase(serverUrl: string, name: string): Promise<void> {
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
}

async function run(serverUrl: string, n: number, protocol: "sotw" | "delta", kind: "floor" | "signalbox", profile: boolean): Promise<RunResult> {
  const spec = DEPENDENCIES >= 0 ? { ...fleetMeshSpec(n), dependencies: DEPENDENCIES } : fleetMeshSpec(n);
  const rows = meshRows(spec);
  const plan = plannedChanges(spec, profile);
  const proxies: WorkerProxy[] = rows.instances.filter((i) => i.service !== serviceName(0)).map((i) => ({ id: i.id, service: i.service }));
  const label = `${kind}/${protocol}/${n}`;
  console.error(`--- ${label}: ${spec.services} services, ${proxies.length} proxies`);

  // The server.
  const dbName = `signalbox_bench_${n}_${protocol}`;
  let sql: pg.Pool | null = null;
  // Both servers run with the V8 flags `signalbox serve` uses, so the floor differs only in its code.
  const server = new Child(kind, kind === "signalbox" ? "signalbox-proc.ts" : "floor-proc.ts", ["--expose-gc", ...SERVER_NODE_FLAGS, ...EXTRA_SERVER_FLAGS]);
  await server.waitFor("alive");
  if (kind === "signalbox") {
    const url = await createDatabase(serverUrl, dbName);
    sql = new pg.Pool({ connectionString: url, max: 2 });
    const client = await sql.connect();
    await migrate(client);
    client.release();
    await seed(sql, rows);
    server.send({ type: "start", databaseUrl: url, debounceMs: DEBOUNCE_MS, maxDelayMs: MAX_DELAY_MS, pushBatchSize: PUSH_BATCH, pushSliceMs: PUSH_SLICE_MS });
  } else {
    server.send({ type: "start", spec, changes: plan.map((p) => p.change), protocol });
  }
  const { port } = await server.waitFor<{ type: "listening"; port: number }>("listening", 300_000);
  await sleep(500);
  await server.request({ type: "gc" }, "gc-done");
  const before = await stats(server);

  // The fleet.
  const workerCount = Math.max(1, Math.ceil(proxies.length / PROXIES_PER_WORKER));
  const workers: Child[] = [];
  for (let w = 0; w < workerCount; w++) workers.push(new Child(`worker-${w}`, "envoy-worker.ts"));
  await Promise.all(workers.map((w) => w.waitFor("alive")));
  await Promise.all(
    workers.map((worker, w) => {
      const mine = proxies.filter((_, i) => i % workerCount === w);
      const init: ToWorker = {
        type: "init",
        target: `127.0.0.1:${port}`,
        protocol,
        proxies: mine,
        channels: Math.max(1, Math.ceil(mine.length / STREAMS_PER_CHANNEL)),
        inboundPort: INBOUND_PORT,
        appPort: APP_PORT,
      };
      return worker.request(init, "ready", 60_000);
    }),
  );

  const connectTimeout = 60_000 + n * 20;
  const connectStart = nowMs();
  const connected = await Promise.all(
    workers.map((w) => w.request<Extract<FromWorker, { type: "connected" }> & AnyMessage>({ type: "connect", timeoutMs: connectTimeout } satisfies ToWorker, "connected", connectTimeout + 10_000)),
  );
  const connectTimes = connected.flatMap((c) => c.times.map((t) => t - connectStart));
  const missing = connected.reduce((sum, c) => sum + c.missing, 0);
  const connect = { ...percentiles(connectTimes), allMs: Math.max(...connectTimes), missing };
  console.error(`    connected ${connectTimes.length}/${proxies.length} in ${(connect.allMs / 1000).toFixed(2)} s (p50 ${connect.p50.toFixed(0)} ms)`);

  await sleep(2_000);
  await server.request({ type: "gc" }, "gc-done");
  const after = await stats(server);
  const idleStart = await stats(server);
  await sleep(2_000);
  const idleEnd = await stats(server);
  const profiles: Record<string, string> = {};
  if (profile) {
    await server.request({ type: "profile", action: "start" }, "profile-done");
    await sleep(2_000);
    const file = join(OUT, `${kind}-${protocol}-${n}-idle.cpuprofile`);
    await server.request({ type: "profile", action: "stop", file }, "profile-done");
    profiles.idle = file;
  }
  const idleRate = (idleEnd.cpuMs - idleStart.cpuMs) / (idleEnd.at - idleStart.at);
  const idleMainRate = (idleEnd.mainMs - idleStart.mainMs) / (idleEnd.at - idleStart.at);

  const changes: ChangeResult[] = [];
  for (let i = 0; i < plan.length; i++) {
    const { change, scoped, first, profile: profileThis } = plan[i]!;
    const expectedServices = [...dependentsOf(rows, change.service)];
    const timeoutMs = 30_000;
    await Promise.all(
      workers.map((w) =>
        w.request({ type: "expect", id: i, kind: change.kind, marker: change.marker, services: expectedServices, timeoutMs } satisfies ToWorker, "expecting"),
      ),
    );
    if (profileThis) await server.request({ type: "profile", action: "start" }, "profile-done");
    const s0 = await stats(server);
    const start = nowMs();
    const convergedWaits = workers.map((w) => w.waitFor<Extract<FromWorker, { type: "converged" }> & AnyMessage>("converged", timeoutMs + 10_000));
    if (kind === "signalbox" && sql) await applyChangeSql(sql, change);
    else server.send({ type: "change", index: i });
    const converged = await Promise.all(convergedWaits);
    const s1 = await stats(server);
    if (profileThis) {
      const file = join(OUT, `${kind}-${protocol}-${n}-${change.kind}.cpuprofile`);
      await server.request({ type: "profile", action: "stop", file }, "profile-done");
      profiles[change.kind] = file;
    }
    await sleep(600); // late or redundant responses still count
    const counters = await Promise.all(workers.map((w) => w.request<Extract<FromWorker, { type: "counters" }> & AnyMessage>({ type: "counters", id: i } satisfies ToWorker, "counters")));
    const times = converged.flatMap((c) => c.times);
    const pushAt = s1.lastChangeAt > start ? s1.lastChangeAt : start;
    const sum = (f: (c: (typeof counters)[number]) => number) => counters.reduce((total, c) => total + f(c), 0);
    const expected = sum((c) => c.expected);
    const result: ChangeResult = {
      kind: change.kind,
      scoped,
      first,
      profiled: profileThis,
      expected,
      converged: times.length,
      fromCommit: percentiles(times.map((t) => t - start)),
      fromPush: percentiles(times.map((t) => t - pushAt)),
      pushDelayMs: pushAt - start,
      cpuMs: s1.cpuMs - s0.cpuMs - idleRate * (s1.at - s0.at),
      mainMs: s1.mainMs - s0.mainMs - idleMainRate * (s1.at - s0.at),
      translateCpuMs: translateCpu(s1) - translateCpu(s0),
      responsesPerProxy: expected > 0 ? sum((c) => c.expectedResponses) / expected : 0,
      maxResponses: Math.max(...counters.map((c) => c.maxResponses)),
      bytesPerProxy: expected > 0 ? sum((c) => c.expectedBytes) / expected : 0,
      affected: sum((c) => c.affected),
      totalResponses: sum((c) => c.responses),
      fleetCpuMs: sum((c) => c.cpuMs),
    };
    changes.push(result);
    console.error(
      `    ${change.kind}${scoped ? " (scoped)" : ""}${first ? " (first)" : ""}${profileThis ? " (profiled)" : ""}: ${result.converged}/${expected} converged, p50 ${result.fromCommit.p50.toFixed(0)} p99 ${result.fromCommit.p99.toFixed(0)} max ${result.fromCommit.max.toFixed(0)} ms (push +${result.pushDelayMs.toFixed(0)} ms), cpu ${result.cpuMs.toFixed(0)} ms (main thread ${result.mainMs.toFixed(0)} ms, translation ${result.translateCpuMs.toFixed(0)} ms; fleet ${result.fleetCpuMs.toFixed(0)} ms), ${result.responsesPerProxy.toFixed(2)} resp/proxy, ${result.affected} proxies got a response; server heap ${(s1.heapUsed / 1e6).toFixed(0)} MB, array buffers ${(s1.arrayBuffers / 1e6).toFixed(1)} MB`,
    );
    await sleep(300);
  }

  for (const worker of workers) worker.send({ type: "stop" } satisfies ToWorker);
  await sleep(300);
  for (const worker of workers) worker.kill();
  server.send({ type: "stop" });
  await sleep(300);
  server.kill();
  await sql?.end();
  if (kind === "signalbox") await dropDatabase(serverUrl, dbName).catch(() => {});

  return {
    n: proxies.length,
    protocol,
    server: kind,
    services: spec.services,
    connect,
    rssBeforeMB: before.rss / 2 ** 20,
    rssAfterMB: after.rss / 2 ** 20,
    rssPerProxyKB: (after.rss - before.rss) / 1024 / proxies.length,
    heapPerProxyKB: (after.heapUsed + after.arrayBuffers - before.heapUsed - before.arrayBuffers) / 1024 / proxies.length,
    idleCpuMsPerS: idleRate * 1000,
    changes,
    profiles,
    workerErrors: workers.reduce((total, w) => total + w.errors.length, 0),
  };
}

/** The server's running total of CPU spent in the cache on new snapshots (Signalbox only). */
function translateCpu(stats: ServerStats): number {
  const value = stats.extra.translateCpuMs;
  return typeof value === "number" ? value : 0;
}

// --- report ------------------------------------------------------------------------

/**
 * The changes of one kind pooled: all of them (latency, responses, bytes),
 * or for CPU the first of the run and the later (steady) ones apart. The
 * first change of a kind runs code paths the process has not run before (V8
 * compiles them as it goes) and collects what the build and connects left;
 * later ones show what a change costs a running server.
 */
function pooledKinds(run: RunResult) {
  const of = (kind: "endpoint" | "rule") => ({ all: pooled(run, kind), steady: pooled(run, kind, "steady"), first: pooled(run, kind, "first") });
  return { endpoint: of("endpoint"), rule: of("rule") };
}

function pooled(run: RunResult, kind: "endpoint" | "rule", which: "all" | "steady" | "first" = "all") {
  const list = run.changes.filter((c) => c.kind === kind && !c.scoped && !c.profiled && (which === "all" || c.first === (which === "first")));
  const all = <T>(f: (c: ChangeResult) => T[]) => list.flatMap(f);
  const mean = (f: (c: ChangeResult) => number) => list.reduce((s, c) => s + f(c), 0) / Math.max(1, list.length);
  // Pool the per-proxy latencies of every change of this kind.
  const fromCommit = list.length ? { p50: mean((c) => c.fromCommit.p50), p99: Math.max(...list.map((c) => c.fromCommit.p99)), max: Math.max(...list.map((c) => c.fromCommit.max)) } : null;
  const fromPush = list.length ? { p50: mean((c) => c.fromPush.p50), p99: Math.max(...list.map((c) => c.fromPush.p99)), max: Math.max(...list.map((c) => c.fromPush.max)) } : null;
  return {
    fromCommit,
    fromPush,
    cpuMs: mean((c) => c.cpuMs),
    mainMs: mean((c) => c.mainMs),
    pushCpuMs: mean((c) => c.cpuMs - c.translateCpuMs),
    responses: mean((c) => c.responsesPerProxy),
    maxResponses: Math.max(0, ...all((c) => [c.maxResponses])),
    bytes: mean((c) => c.bytesPerProxy),
    missing: list.reduce((s, c) => s + (c.expected - c.converged), 0),
  };
}

export function report(runs: readonly RunResult[], translate: TranslateResult | null): string {
  const lines: string[] = [];
  lines.push(
    "| N | xDS | server | connect+converge all (s) | RSS/proxy (KB) | endpoint change p50 / p99 / max (ms) | from push p99 (ms) | resp/proxy | bytes/proxy | steady CPU/change (ms) | rule change p50 / p99 / max (ms) | from push p99 (ms) | resp/proxy | bytes/proxy | steady CPU/change (ms) | first change CPU: endpoint / rule (ms) | scoped change: pushed / dependents |",
    "| ---: | --- | --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- | --- |",
  );
  for (const r of runs) {
    const { endpoint, rule: rules } = pooledKinds(r);
    const ep = endpoint.all;
    const rule = rules.all;
    const scoped = r.changes.find((c) => c.scoped);
    const missing = ep.missing + rule.missing + r.connect.missing;
    lines.push(
      `| ${r.n} | ${r.protocol} | ${r.server}${missing ? ` (${missing} missed)` : ""} | ${f2(r.connect.allMs / 1000)} | ${f1(r.rssPerProxyKB)} | ` +
        `${f0(ep.fromCommit?.p50)} / ${f0(ep.fromCommit?.p99)} / ${f0(ep.fromCommit?.max)} | ${f0(ep.fromPush?.p99)} | ${f2(ep.responses)} | ${f0(ep.bytes)} | ${f0(endpoint.steady.cpuMs)} | ` +
        `${f0(rule.fromCommit?.p50)} / ${f0(rule.fromCommit?.p99)} / ${f0(rule.fromCommit?.max)} | ${f0(rule.fromPush?.p99)} | ${f2(rule.responses)} | ${f0(rule.bytes)} | ${f0(rules.steady.cpuMs)} | ` +
        `${f0(endpoint.first.cpuMs)} / ${f0(rules.first.cpuMs)} | ${scoped ? `${scoped.affected} / ${scoped.expected}` : "–"} |`,
    );
  }
  lines.push("", "Signalbox as a multiple of the floor (same N, same protocol):", "");
  lines.push(
    "| N | xDS | endpoint p99 from push | endpoint p99 from commit | endpoint steady CPU/change | ... without translation | rule p99 from push | rule steady CPU/change | ... without translation | first endpoint change CPU | first rule change CPU | RSS/proxy | connect all |",
    "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
  );
  for (const r of runs.filter((x) => x.server === "signalbox")) {
    const floor = runs.find((x) => x.server === "floor" && x.n === r.n && x.protocol === r.protocol);
    if (!floor) continue;
    // Latency over every change; CPU of the steady changes, and of the first apart.
    const sb = pooledKinds(r);
    const fl = pooledKinds(floor);
    const ratio = (x: number | undefined, y: number | undefined) => (x === undefined || y === undefined || y <= 0 ? "–" : `${(x / y).toFixed(2)}x`);
    const kindRatios = (kind: "endpoint" | "rule") => {
      const [a, b] = [sb[kind], fl[kind]];
      return [ratio(a.all.fromPush?.p99, b.all.fromPush?.p99), ratio(a.all.fromCommit?.p99, b.all.fromCommit?.p99), ratio(a.steady.cpuMs, b.steady.cpuMs), ratio(a.steady.pushCpuMs, b.steady.pushCpuMs)];
    };
    const [epPush, epCommit, epCpu, epPushCpu] = kindRatios("endpoint");
    const [rulePush, , ruleCpu, rulePushCpu] = kindRatios("rule");
    lines.push(
      `| ${r.n} | ${r.protocol} | ${epPush} | ${epCommit} | ${epCpu} | ${epPushCpu} | ${rulePush} | ${ruleCpu} | ${rulePushCpu} | ${ratio(sb.endpoint.first.cpuMs, fl.endpoint.first.cpuMs)} | ${ratio(sb.rule.first.cpuMs, fl.rule.first.cpuMs)} | ${ratio(r.rssPerProxyKB, floor.rssPerProxyKB)} | ${ratio(r.connect.allMs, floor.connect.allMs)} |`,
    );
  }
  lines.push("", "Steady CPU per change, and how much of it ran on the main thread (the rest: V8's background GC and compiler threads):", "");
  lines.push("| N | xDS | server | endpoint CPU (ms) | ... main thread (ms) | rule CPU (ms) | ... main thread (ms) |", "| ---: | --- | --- | ---: | ---: | ---: | ---: |");
  for (const r of runs) {
    const { endpoint, rule } = pooledKinds(r);
    lines.push(`| ${r.n} | ${r.protocol} | ${r.server} | ${f0(endpoint.steady.cpuMs)} | ${f0(endpoint.steady.mainMs)} | ${f0(rule.steady.cpuMs)} | ${f0(rule.steady.mainMs)} |`);
  }
  if (translate) lines.push("", ...translationTable(translate));
  return lines.join("\n");
}

async function translateBench(): Promise<TranslateResult> {
  const child = new Child("translate", "translate-bench.ts", ["--expose-gc", ...SERVER_NODE_FLAGS], ["--json"]);
  const result = await new Promise<TranslateResult>((resolve, reject) => {
    child.proc.on("message", (m: AnyMessage) => {
      if (m.type === "result") resolve(m.result as TranslateResult);
    });
    child.proc.on("exit", (code) => reject(new Error(`translate bench exited (${code}) without a result`)));
  });
  child.kill();
  return result;
}

async function main(): Promise<void> {
  mkdirSync(OUT, { recursive: true });
  let serverUrl = process.env.DATABASE_URL ?? "";
  let stopPostgres: (() => Promise<void>) | null = null;
  if (SERVERS.includes("signalbox")) {
    stopPostgres = await setupPostgres({ provide: (_key: string, value: string) => (serverUrl = value) } as unknown as TestProject);
  }
  const runs: RunResult[] = [];
  try {
    let translate: TranslateResult | null = null;
    if (!flag("skip-translate")) {
      console.error("--- translation benchmark (5,000 services x 20 instances, 5,000 rules)");
      translate = await translateBench();
      console.error(`    ${JSON.stringify(translate)}`);
    }
    const largest = Math.max(...SIZES);
    for (const n of SIZES) {
      for (const protocol of PROTOCOLS) {
        for (const server of SERVERS) {
          runs.push(await run(serverUrl, n, protocol, server, PROFILE && n === largest));
        }
      }
    }
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    const table = report(runs, translate);
    const profileNotes = runs
      .flatMap((r) => Object.entries(r.profiles).map(([kind, file]) => `#### ${r.server} ${r.protocol} N=${r.n}, ${kind} change\n\n${profileMarkdown(summarize(JSON.parse(readFileSync(file, "utf8"))), 12)}`))
      .join("\n\n");
    writeFileSync(join(OUT, `fleet-${stamp}.json`), JSON.stringify({ argv: process.argv.slice(2), runs, translate }, null, 2));
    writeFileSync(join(OUT, `fleet-${stamp}.md`), `${table}\n\n${profileNotes}\n`);
    console.log(table);
    if (profileNotes) console.log(`\n${profileNotes}`);
  } finally {
    await stopPostgres?.();
  }
}

await main();
process.exit(0);
