// Runs real xDS clients, each in its own child process, against an xDS server.
//
//   grpc-js-xds: node test/support/clients/grpc-js-xds-worker.mjs  (@grpc/grpc-js-xds)
//   c-core:      /usr/bin/python3 test/support/clients/c-core-worker.py  (Debian python3-grpcio, gRPC C-core)
//
// Both clients read the xDS bootstrap once per process and grpc-js-xds registers the
// xds: scheme globally, so every session is a fresh process with one channel. Parent
// and child speak one JSON object per line over stdin/stdout (init, ready, call,
// state, close); "init" carries the bootstrap, which the child puts in
// GRPC_XDS_BOOTSTRAP_CONFIG before it creates its channel (both clients read it
// lazily), so processes can be started ahead of time (prewarmClients). The child's
// stderr is kept, and its tail is part of every ClientHarnessError.
//
// Debugging: SIGNALBOX_CLIENT_TRACE=1 turns on the clients' xDS tracers
// (GRPC_TRACE / GRPC_VERBOSITY=DEBUG) and streams their stderr to this process's
// stderr; SIGNALBOX_CLIENT_STDERR=1 streams stderr without changing tracing.
// GRPC_TRACE and GRPC_VERBOSITY set by the caller pass through untouched (they are
// read at library load, so they apply to processes spawned after they are set).
// A c-core child that dies with SIGSEGV prints its Python stack (faulthandler);
// C-core 1.51.1 is known to crash with lb_policy RING_HASH (grpc/grpc#31766).
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { createRequire } from "node:module";
import * as readline from "node:readline";
import { fileURLToPath } from "node:url";
import * as path from "node:path";

export type ClientKind = "grpc-js-xds" | "c-core";
export const CLIENT_KINDS: readonly ClientKind[] = ["grpc-js-xds", "c-core"];

/** The interpreter that has gRPC C-core bindings (the pyenv python3 on PATH has none). */
export const C_CORE_PYTHON = "/usr/bin/python3";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const WORKER: Record<ClientKind, { cmd: string; args: string[] }> = {
  "grpc-js-xds": { cmd: process.execPath, args: [path.join(HERE, "grpc-js-xds-worker.mjs")] },
  "c-core": { cmd: C_CORE_PYTHON, args: ["-u", path.join(HERE, "c-core-worker.py")] },
};

/** Trace settings used by SIGNALBOX_CLIENT_TRACE=1 (if GRPC_TRACE is not already set). */
export const TRACE_ENV: Record<ClientKind, Record<string, string>> = {
  "grpc-js-xds": {
    GRPC_TRACE: "xds_client,xds_resolver,cds_balancer,xds_cluster_resolver,xds_cluster_impl,xds_cluster_manager,priority,weighted_target,round_robin,resolving_load_balancer,channel",
    GRPC_VERBOSITY: "DEBUG",
  },
  "c-core": {
    GRPC_TRACE: "xds_client,xds_resolver,cds_lb,xds_cluster_resolver_lb,xds_cluster_impl_lb,xds_cluster_manager_lb,priority_lb,weighted_target_lb,round_robin",
    GRPC_VERBOSITY: "DEBUG",
  },
};

const availability = new Map<ClientKind, { ok: boolean; reason: string }>();

/**
 * Whether a client can run on this machine, with the reason if not (for loud
 * `it.skipIf` / `describe.skipIf` messages). Cached per process.
 */
export function clientAvailability(kind: ClientKind): { ok: boolean; reason: string } {
  let a = availability.get(kind);
  if (a) return a;
  if (kind === "c-core") {
    const r = spawnSync(C_CORE_PYTHON, ["-c", "import grpc; print(grpc.__version__)"], { encoding: "utf8", timeout: 20_000 });
    a = r.status === 0
      ? { ok: true, reason: `grpcio ${r.stdout.trim()} via ${C_CORE_PYTHON}` }
      : { ok: false, reason: `gRPC C-core client unavailable: \`${C_CORE_PYTHON} -c "import grpc"\` failed (${r.error?.message ?? r.stderr.trim().split("\n").pop()}); install Debian's python3-grpcio` };
  } else {
    try {
      createRequire(import.meta.url).resolve("@grpc/grpc-js-xds");
      a = { ok: true, reason: "@grpc/grpc-js-xds resolvable" };
    } catch (e) {
      a = { ok: false, reason: `grpc-js-xds client unavailable: ${(e as Error).message}` };
    }
  }
  availability.set(kind, a);
  return a;
}

/** The client kinds that can run here, and those that cannot (for loud skips naming the reason). */
export function clientKindsByAvailability(): { available: ClientKind[]; missing: ClientKind[] } {
  return {
    available: CLIENT_KINDS.filter((kind) => clientAvailability(kind).ok),
    missing: CLIENT_KINDS.filter((kind) => !clientAvailability(kind).ok),
  };
}

export interface CallResult {
  /** Successful RPCs per backend name (from the backend's reply). */
  byBackend: Record<string, number>;
  /** Failed RPCs per gRPC status code name, e.g. UNAVAILABLE, DEADLINE_EXCEEDED. */
  errors: Record<string, number>;
  /** The first error message seen per status code name. */
  errorMessages?: Record<string, string>;
  /** Per-RPC latency in ms, in completion order. */
  latenciesMs?: number[];
}

export interface CallOptions {
  /** Request metadata (lowercase keys). */
  metadata?: Record<string, string>;
  /** Per-RPC deadline; default 2000 ms, so a broken config yields errors, not hangs. */
  timeoutMs?: number;
  /** RPCs in flight at once; default 1 (sequential, so round robin is exact). */
  concurrency?: number;
  /** gRPC wait_for_ready on each RPC; default false (fail fast in TRANSIENT_FAILURE). */
  waitForReady?: boolean;
}

export interface SessionOptions {
  /** The gRPC xDS bootstrap JSON (see makeBootstrap). */
  bootstrap: object;
  /** e.g. "xds:///echo" */
  target: string;
  /** Wait this long for the channel to become READY at start; default 10000, 0 = skip. */
  readyTimeoutMs?: number;
  /** Throw (with the child's stderr tail) if the channel is not READY in time; default false. */
  requireReady?: boolean;
  /** Extra environment for the child (e.g. GRPC_XDS_EXPERIMENTAL_RBAC: "true"). */
  env?: Record<string, string>;
  /** Stream the child's stderr to ours (also enabled by SIGNALBOX_CLIENT_STDERR=1). */
  echoStderr?: boolean;
}

export interface RunClientOptions extends SessionOptions, CallOptions {
  rpcs: number;
}

export interface ReadyInfo {
  ready: boolean;
  ms: number;
  state: string;
  error?: string | null;
}

export interface ClientSession {
  readonly kind: ClientKind;
  readonly pid: number;
  /** From startClientSession() to a channel created (process start and library load included unless prewarmed), ms. */
  readonly startupMs: number;
  /** Whether a pre-warmed process (prewarmClients) was used. */
  readonly prewarmed: boolean;
  /** Result of the initial readiness wait (ready: false, ms: 0 if skipped). */
  readonly initialReady: ReadyInfo;
  call(n: number, metadata?: Record<string, string>, opts?: Omit<CallOptions, "metadata">): Promise<CallResult>;
  waitReady(timeoutMs: number): Promise<ReadyInfo>;
  /** Channel connectivity state name, e.g. READY, TRANSIENT_FAILURE. */
  state(): Promise<string>;
  /** The last lines of the child's stderr. */
  stderrTail(lines?: number): string;
  close(): Promise<void>;
}

export class ClientHarnessError extends Error {
  constructor(
    message: string,
    readonly kind: ClientKind,
    readonly stderr: string,
  ) {
    super(`${message}\n--- ${kind} client stderr (tail) ---\n${stderr || "(empty)"}\n--- end ---`);
    this.name = "ClientHarnessError";
  }
}

export interface BootstrapOptions {
  /** "host:port" of the xDS server. */
  serverUri: string;
  nodeId?: string;
  /** Node cluster (the service name of the client). */
  cluster?: string;
  metadata?: Record<string, unknown>;
  locality?: { region?: string; zone?: string; sub_zone?: string };
  /** Extra server_features, e.g. "ignore_resource_deletion". "xds_v3" is always sent. */
  serverFeatures?: string[];
}

/** A minimal gRPC xDS bootstrap pointing at one insecure ADS server. */
export function makeBootstrap(o: BootstrapOptions): object {
  return {
    xds_servers: [
      {
        server_uri: o.serverUri,
        channel_creds: [{ type: "insecure" }],
        server_features: ["xds_v3", ...(o.serverFeatures ?? [])],
      },
    ],
    node: {
      id: o.nodeId ?? `test-client-${process.pid}`,
      cluster: o.cluster ?? "test-client",
      locality: o.locality ?? {},
      ...(o.metadata ? { metadata: o.metadata } : {}),
    },
  };
}

// Every live child, killed when this process exits (e.g. a test file ends or crashes).
// Children also exit by themselves when their stdin closes.
const live = new Set<ChildProcessWithoutNullStreams>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const child of live) child.kill("SIGKILL");
  });
}

/** Kill every client child this process started, sessions and pre-warmed spares (for afterAll hooks). */
export async function closeAllClientSessions(): Promise<void> {
  pool.clear();
  await Promise.all([...live].map((child) => killChild(child)));
}

function killChild(child: ChildProcessWithoutNullStreams): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), 1000);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

const envTrue = (v: string | undefined): boolean => v !== undefined && v !== "" && v !== "0" && v !== "false";

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  op: string;
}

/** A started worker process (libraries loaded, no channel yet). */
interface Worker {
  kind: ClientKind;
  pid: number;
  /** Spawn to "hello", ms. */
  loadMs: number;
  envKey: string;
  request<T>(op: string, body: Record<string, unknown>, parentTimeoutMs: number): Promise<T>;
  exited(): string | undefined;
  stderrTail(lines?: number): string;
  setEcho(echo: boolean): void;
  fail(message: string): ClientHarnessError;
  kill(): Promise<void>;
}

/** The child's environment. Anything read at library load time (tracers, feature flags) must be here. */
function childEnv(kind: ClientKind, extra: Record<string, string> | undefined): { env: NodeJS.ProcessEnv; key: string } {
  const env: NodeJS.ProcessEnv = { ...process.env };
  // The bootstrap arrives with the "init" op; never let the caller's leak in.
  delete env.GRPC_XDS_BOOTSTRAP;
  delete env.GRPC_XDS_BOOTSTRAP_CONFIG;
  delete env.PYTHONPATH;
  delete env.PYTHONHOME;
  if (envTrue(process.env.SIGNALBOX_CLIENT_TRACE) && !process.env.GRPC_TRACE) Object.assign(env, TRACE_ENV[kind]);
  Object.assign(env, extra ?? {});
  const key = JSON.stringify(Object.entries(extra ?? {}).sort());
  return { env, key };
}

async function spawnWorker(kind: ClientKind, extraEnv: Record<string, string> | undefined, echoStderr: boolean): Promise<Worker> {
  installExitHook();
  const { env, key } = childEnv(kind, extraEnv);
  const spec = WORKER[kind];
  const spawnedAt = performance.now();
  const child = spawn(spec.cmd, spec.args, { env, stdio: ["pipe", "pipe", "pipe"] });
  live.add(child);

  let echo = echoStderr;
  const stderrLines: string[] = [];
  const MAX_LINES = 400;
  const stderrTail = (lines = 60): string => stderrLines.slice(-lines).join("\n");
  const keep = (line: string): void => {
    stderrLines.push(line);
    if (stderrLines.length > MAX_LINES) stderrLines.splice(0, stderrLines.length - MAX_LINES);
    if (echo) process.stderr.write(`[${kind} ${child.pid}] ${line}\n`);
  };
  readline.createInterface({ input: child.stderr }).on("line", keep);

  const pending = new Map<number, Pending>();
  let nextId = 1;
  let exited: string | undefined;
  let onHello: (() => void) | undefined;
  let onEarlyExit: ((e: Error) => void) | undefined;

  const fail = (message: string): ClientHarnessError => new ClientHarnessError(message, kind, stderrTail());

  readline.createInterface({ input: child.stdout }).on("line", (line) => {
    let msg: { event?: string; id?: number; ok?: boolean; result?: unknown; error?: string };
    try {
      msg = JSON.parse(line);
    } catch {
      keep(`(stdout) ${line}`);
      return;
    }
    if (msg.event === "hello") {
      onHello?.();
      return;
    }
    const p = msg.id !== undefined ? pending.get(msg.id) : undefined;
    if (!p || msg.id === undefined) {
      keep(`(stdout, unexpected) ${line}`);
      return;
    }
    pending.delete(msg.id);
    clearTimeout(p.timer);
    if (msg.ok) p.resolve(msg.result);
    else p.reject(fail(`${kind} client: op ${p.op} failed in the child: ${msg.error}`));
  });

  child.on("error", (err) => {
    exited = `failed to spawn ${spec.cmd}: ${err.message}`;
    onEarlyExit?.(fail(exited));
  });
  child.on("exit", (code, signal) => {
    live.delete(child);
    exited ??= `exited with code ${code} signal ${signal}${signal === "SIGSEGV" ? " (the client crashed)" : ""}`;
  });
  // "close" comes after stdout/stderr are drained, so the stderr tail is complete.
  child.on("close", () => {
    exited ??= "closed its pipes";
    onEarlyExit?.(fail(`${kind} client ${exited} before it started`));
    for (const [id, p] of pending) {
      pending.delete(id);
      clearTimeout(p.timer);
      p.reject(fail(`${kind} client ${exited} during op ${p.op}`));
    }
  });
  child.stdin.on("error", () => undefined); // EPIPE after the child died is reported via "close"

  const request = <T>(op: string, body: Record<string, unknown>, parentTimeoutMs: number): Promise<T> => {
    if (exited) return Promise.reject(fail(`${kind} client ${exited}; cannot run op ${op}`));
    const id = nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(fail(`${kind} client: op ${op} got no answer within ${parentTimeoutMs} ms (child hung?)`));
      }, parentTimeoutMs);
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer, op });
      child.stdin.write(JSON.stringify({ ...body, id, op }) + "\n");
    });
  };

  try {
    const loadMs = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(fail(`${kind} client did not start within 30 s`)), 30_000);
      onHello = () => {
        clearTimeout(timer);
        resolve(Math.round(performance.now() - spawnedAt));
      };
      onEarlyExit = (e) => {
        clearTimeout(timer);
        reject(e);
      };
    });
    return {
      kind,
      pid: child.pid ?? -1,
      loadMs,
      envKey: key,
      request,
      exited: () => exited,
      stderrTail,
      setEcho: (e) => {
        echo = e;
      },
      fail,
      kill: () => killChild(child),
    };
  } catch (e) {
    await killChild(child);
    throw e;
  } finally {
    onHello = undefined;
    onEarlyExit = undefined;
  }
}

// Pre-warmed workers: libraries loaded, waiting for "init". grpc-js-xds spends
// about a second (more on a loaded machine) parsing Envoy protos at load time,
// and it reads the bootstrap lazily, so a spare can be started ahead of need.
const pool = new Map<ClientKind, Array<Promise<Worker>>>();

/**
 * Start `count` spare client processes of a kind now, so later startClientSession()
 * calls (without `env`) skip the library load. Spares are killed by
 * closeAllClientSessions() and at process exit. Returns when they are loaded.
 */
export async function prewarmClients(kind: ClientKind, count = 1): Promise<void> {
  const list = pool.get(kind) ?? [];
  pool.set(kind, list);
  const echo = envTrue(process.env.SIGNALBOX_CLIENT_TRACE) || envTrue(process.env.SIGNALBOX_CLIENT_STDERR);
  const started = Array.from({ length: count }, () => spawnWorker(kind, undefined, echo));
  for (const w of started) w.catch(() => undefined); // reported when taken
  list.push(...started);
  await Promise.allSettled(started);
}

async function takeSpare(kind: ClientKind): Promise<Worker | undefined> {
  const list = pool.get(kind);
  while (list && list.length > 0) {
    const w = await list.shift()!.catch(() => undefined);
    if (w && !w.exited()) return w;
  }
  return undefined;
}

/** Start a long-lived client in its own process; call() reuses its one channel. */
export async function startClientSession(kind: ClientKind, opts: SessionOptions): Promise<ClientSession> {
  const began = performance.now();
  const echo = opts.echoStderr ?? (envTrue(process.env.SIGNALBOX_CLIENT_TRACE) || envTrue(process.env.SIGNALBOX_CLIENT_STDERR));
  const hasEnv = opts.env !== undefined && Object.keys(opts.env).length > 0;
  const spare = hasEnv ? undefined : await takeSpare(kind);
  const worker = spare ?? (await spawnWorker(kind, opts.env, echo));
  worker.setEcho(echo);
  try {
    await worker.request("init", { bootstrap: opts.bootstrap, target: opts.target }, 15_000);
  } catch (e) {
    await worker.kill();
    throw e;
  }
  const startupMs = Math.round(performance.now() - began);

  const waitReady = (timeoutMs: number): Promise<ReadyInfo> => worker.request<ReadyInfo>("ready", { timeoutMs }, timeoutMs + 10_000);

  const session: ClientSession = {
    kind,
    pid: worker.pid,
    startupMs,
    prewarmed: spare !== undefined,
    initialReady: { ready: false, ms: 0, state: "UNKNOWN" },
    call(n, metadata, o = {}) {
      const timeoutMs = o.timeoutMs ?? 2000;
      const concurrency = Math.max(1, o.concurrency ?? 1);
      const budget = Math.ceil(n / concurrency) * (timeoutMs + 50) + 10_000;
      return worker.request<CallResult>(
        "call",
        { n, metadata: metadata ?? {}, timeoutMs, concurrency, waitForReady: o.waitForReady ?? false },
        budget,
      );
    },
    waitReady,
    state: () => worker.request<{ state: string }>("state", {}, 10_000).then((r) => r.state),
    stderrTail: (lines) => worker.stderrTail(lines),
    async close() {
      if (!worker.exited()) await worker.request("close", {}, 3000).catch(() => undefined);
      await worker.kill();
    },
  };

  const readyTimeoutMs = opts.readyTimeoutMs ?? 10_000;
  if (readyTimeoutMs > 0) {
    try {
      const r = await waitReady(readyTimeoutMs);
      (session as { initialReady: ReadyInfo }).initialReady = r;
      if (!r.ready && opts.requireReady) {
        throw worker.fail(`${kind} client channel to ${opts.target} not READY within ${readyTimeoutMs} ms (state ${r.state}${r.error ? `: ${r.error}` : ""})`);
      }
    } catch (e) {
      await worker.kill();
      throw e;
    }
  }
  return session;
}

export interface RunResult extends CallResult {
  startupMs: number;
  ready: ReadyInfo;
}

/** One-shot: start a client process, wait for READY (non-fatal unless requireReady), make `rpcs` RPCs, stop. */
export async function runClient(kind: ClientKind, opts: RunClientOptions): Promise<RunResult> {
  const session = await startClientSession(kind, opts);
  try {
    const result = await session.call(opts.rpcs, opts.metadata, opts);
    return { ...result, startupMs: session.startupMs, ready: session.initialReady };
  } finally {
    await session.close();
  }
}

/**
 * Repeat session.call(n) until predicate(result) holds, or throw after withinMs (default 5000) with
 * the last result and the child's stderr tail. For "the split moves within 2 s" checks.
 */
export async function pollCalls(
  session: ClientSession,
  n: number,
  predicate: (r: CallResult) => boolean,
  o: CallOptions & { withinMs?: number; intervalMs?: number } = {},
): Promise<CallResult & { elapsedMs: number; attempts: number }> {
  const deadline = performance.now() + (o.withinMs ?? 5000);
  const start = performance.now();
  let attempts = 0;
  let last: CallResult | undefined;
  for (;;) {
    attempts += 1;
    last = await session.call(n, o.metadata, { timeoutMs: o.timeoutMs, concurrency: o.concurrency, waitForReady: o.waitForReady });
    if (predicate(last)) return { ...last, elapsedMs: Math.round(performance.now() - start), attempts };
    if (performance.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, o.intervalMs ?? 50));
  }
  throw new ClientHarnessError(
    `${session.kind}: condition not met after ${attempts} polls in ${Math.round(performance.now() - start)} ms; last result ${JSON.stringify({ byBackend: last.byBackend, errors: last.errors, errorMessages: last.errorMessages })}`,
    session.kind,
    session.stderrTail(),
  );
}

/** Fraction of successful RPCs that reached `backend` (0 if none succeeded). */
export function share(r: CallResult, backend: string): number {
  const ok = Object.values(r.byBackend).reduce((a, b) => a + b, 0);
  return ok === 0 ? 0 : (r.byBackend[backend] ?? 0) / ok;
}

/**
 * The range a fraction of `n` independent RPCs, each going one way with
 * probability `p`, falls in but once in millions of runs (±5 standard
 * deviations): bounds for traffic splits and percentages that do not flake.
 */
export function binomialRange(p: number, n: number): { readonly low: number; readonly high: number } {
  const spread = 5 * Math.sqrt((p * (1 - p)) / n);
  return { low: p - spread, high: p + spread };
}

/** Total failed RPCs. */
export function errorCount(r: CallResult): number {
  return Object.values(r.errors).reduce((a, b) => a + b, 0);
}
