// Child process: one @grpc/grpc-js + @grpc/grpc-js-xds client on one xds:/// target.
// Plain .mjs so it starts without a TypeScript loader. Spawned by runner.ts.
//
// Protocol: one JSON object per line. stdout: {"event":"hello",...} once the
// libraries are loaded, then one reply line per request line read from stdin:
// {"id":N,"ok":true,"result":{...}} or {"id":N,"ok":false,"error":"..."}.
// Ops: init {bootstrap, target} (first), ready {timeoutMs}, call {n, metadata,
// timeoutMs, concurrency, waitForReady}, state, close. Library logs go to stderr.
// EOF on stdin (the parent died or closed us) ends the process.
import * as readline from "node:readline";
import { performance } from "node:perf_hooks";
import * as grpc from "@grpc/grpc-js";
import * as xds from "@grpc/grpc-js-xds";

const WHOAMI_PATH = "/signalbox.test.Echo/Whoami";
xds.register();

// Created by the "init" op. grpc-js-xds reads the bootstrap lazily, when the first
// xds: channel resolves, so a process can be started (and loaded) before its
// bootstrap is known.
let client;
let channel;

function init(req) {
  if (client) throw new Error("already initialised");
  if (!req.target) throw new Error("init: target is required");
  delete process.env.GRPC_XDS_BOOTSTRAP;
  process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify(req.bootstrap);
  client = new grpc.Client(req.target, grpc.credentials.createInsecure());
  channel = client.getChannel();
  return {};
}

function send(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function stateName() {
  return grpc.connectivityState[channel.getConnectivityState(false)];
}

function waitReady(timeoutMs) {
  const start = performance.now();
  return new Promise((resolve) => {
    client.waitForReady(Date.now() + timeoutMs, (err) => {
      resolve({ ready: !err, ms: Math.round(performance.now() - start), state: stateName(), error: err ? String(err.message) : undefined });
    });
  });
}

function oneCall(metadataObj, timeoutMs, waitForReady) {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadataObj ?? {})) md.set(k, String(v));
  if (waitForReady) md.setOptions({ waitForReady: true });
  const start = performance.now();
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      WHOAMI_PATH,
      (b) => b,
      (b) => b,
      Buffer.alloc(0),
      md,
      { deadline: Date.now() + timeoutMs },
      (err, value) => {
        const ms = performance.now() - start;
        if (err) {
          resolve({ ms, code: grpc.status[err.code] ?? String(err.code), message: err.details ?? err.message });
          return;
        }
        try {
          const reply = JSON.parse(Buffer.from(value).toString("utf8"));
          resolve({ ms, backend: String(reply.backend) });
        } catch (e) {
          resolve({ ms, code: "BAD_REPLY", message: String(e) });
        }
      },
    );
  });
}

async function calls(req) {
  const n = req.n ?? 1;
  const timeoutMs = req.timeoutMs ?? 2000;
  const concurrency = Math.max(1, req.concurrency ?? 1);
  const result = { byBackend: {}, errors: {}, errorMessages: {}, latenciesMs: [] };
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next += 1;
      const r = await oneCall(req.metadata, timeoutMs, !!req.waitForReady);
      result.latenciesMs.push(Math.round(r.ms * 100) / 100);
      if (r.backend !== undefined) {
        result.byBackend[r.backend] = (result.byBackend[r.backend] ?? 0) + 1;
      } else {
        result.errors[r.code] = (result.errors[r.code] ?? 0) + 1;
        if (!(r.code in result.errorMessages)) result.errorMessages[r.code] = r.message;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  return result;
}

async function handle(req) {
  if (req.op === "init") return init(req);
  if (!client) throw new Error(`op ${req.op} before init`);
  switch (req.op) {
    case "ready":
      return waitReady(req.timeoutMs ?? 10000);
    case "call":
      return calls(req);
    case "state":
      return { state: stateName() };
    case "close":
      client.close();
      setTimeout(() => process.exit(0), 10);
      return {};
    default:
      throw new Error(`unknown op ${req.op}`);
  }
}

send({ event: "hello", pid: process.pid, client: "grpc-js-xds", loadMs: Math.round(performance.now()) /* since process start */ });

// Requests are handled strictly one at a time, in order.
let queue = Promise.resolve();
const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  if (!line.trim()) return;
  queue = queue.then(async () => {
    let req;
    try {
      req = JSON.parse(line);
      send({ id: req.id, ok: true, result: await handle(req) });
    } catch (e) {
      send({ id: req?.id ?? null, ok: false, error: String(e?.stack ?? e) });
    }
  });
});
rl.on("close", () => process.exit(0));
