/**
 * The cost of Signalbox's own push and ACK code, without gRPC: `--proxies` delta
 * streams (`--protocol sotw`: state of the world) over the fleet benchmark's
 * mesh (N/10 + 1 services, 10 instances each), driven in process with fake
 * sinks. Each stream does Envoy's exchange
 * first (CDS and LDS wildcard, EDS and RDS by name, ACKing each response). Then,
 * per round, one endpoint change (an instance of the service every proxy calls
 * moves) and one rule change (a route for that service), each timed in three
 * steps: the cache taking the new snapshot, refreshing every affected stream,
 * and decoding and handling every stream's ACK.
 *
 * Wall time of the main thread (nothing else runs in this process); medians of
 * the rounds after the first two. Also the live heap after a full collection
 * at the start of the third round and of the last: what a long-running server
 * keeps per change (each rule change adds a route, so a little growth is content).
 * `--services` and `--dependencies` change the mesh; with `--dependencies 0`
 * no service declares any, so every view holds the whole mesh (the default
 * when a mesh declares none), and an endpoint change reaches every view.
 * After the rounds a service joins the mesh (`--join-moves`: while an instance
 * of the service every proxy calls moves, in the same snapshot).
 * Run alone:
 *   node --expose-gc --max-semi-space-size=64 --no-allocation-site-pretenuring --heap-growing-percent=100 --import tsx bench/push-bench.ts [--proxies 10000] [--rounds 12] [--services 1001] [--dependencies 5] [--protocol delta] [--join-moves]
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { pino } from "pino";
import type { Logger } from "pino";
import { DeltaDiscoveryRequestSchema, DiscoveryRequestSchema } from "../src/gen/envoy/service/discovery/v3/discovery_pb.ts";
import type { Proxy } from "../src/model/proxy.ts";
import type { RegistryState } from "../src/model/registry.ts";
import type { RuleSet } from "../src/model/rules.ts";
import { shareStructure } from "../src/model/share.ts";
import { SnapshotBuilder } from "../src/translate/incremental-snapshot.ts";
import { RESOURCE_KINDS, TYPE_URLS, type ResourceKind } from "../src/translate/resource-types.ts";
import { translate } from "../src/translate/translate.ts";
import { ResourceCache } from "../src/xds/cache.ts";
import { DeltaStream } from "../src/xds/delta-stream.ts";
import { XdsMetrics } from "../src/xds/metrics.ts";
import type { ProxyStatus } from "../src/xds/proxy-status.ts";
import { decodeDeltaDiscoveryRequest, decodeDiscoveryRequest } from "../src/xds/request-decode.ts";
import { SotwStream } from "../src/xds/sotw-stream.ts";
import type { ResponseSink, XdsStream } from "../src/xds/xds-stream.ts";
import { resourceGate } from "../src/xds/validation-gate.ts";
import { asServerProcess, flag, numberOption, option } from "./cli.ts";
import { addService, APP_PORT, applyChange, fleetMeshSpec, INBOUND_PORT, meshModel, meshRows, moveInstance, ruleChange, serviceName, type MeshSpec } from "./mesh.ts";

/** How a simulated Envoy speaks one protocol: its stream, and its requests as the server's decoder gets them. */
interface Protocol {
  readonly name: "delta" | "sotw";
  open(status: ProxyStatus, cache: ResourceCache, sink: ResponseSink, metrics: XdsMetrics, logger: Logger): XdsStream;
  /** A first request (no nonce) subscribing to `names`, or an ACK of `nonce` at `version` (state of the world repeats the names). */
  request(kind: ResourceKind, nonce: string, names: readonly string[], version: string): Uint8Array;
  handle(stream: XdsStream, bytes: Uint8Array): void;
}

const PROTOCOLS: Record<"delta" | "sotw", Protocol> = {
  delta: {
    name: "delta",
    open: (status, cache, sink, metrics, logger) => new DeltaStream(status, cache, sink, metrics, logger, RESOURCE_KINDS),
    request: (kind, nonce, names) =>
      toBinary(DeltaDiscoveryRequestSchema, create(DeltaDiscoveryRequestSchema, { typeUrl: TYPE_URLS[kind], responseNonce: nonce, resourceNamesSubscribe: nonce === "" ? [...names] : [] })),
    handle: (stream, bytes) => (stream as DeltaStream).handleRequest(decodeDeltaDiscoveryRequest(bytes).request),
  },
  sotw: {
    name: "sotw",
    open: (status, cache, sink, metrics, logger) => new SotwStream(status, cache, sink, metrics, logger, RESOURCE_KINDS),
    request: (kind, nonce, names, version) =>
      toBinary(DiscoveryRequestSchema, create(DiscoveryRequestSchema, { typeUrl: TYPE_URLS[kind], responseNonce: nonce, versionInfo: version, resourceNames: [...names] })),
    handle: (stream, bytes) => (stream as SotwStream).handleRequest(decodeDiscoveryRequest(bytes).request),
  },
};

interface FakeEnvoy {
  readonly stream: XdsStream;
  readonly status: ProxyStatus;
  /** What it subscribed to by name, per kind (CDS and LDS: none, the wildcard). */
  readonly names: Record<ResourceKind, readonly string[]>;
  /** The nonce of the last response written to this stream. */
  lastNonce: string;
}

/** The request that ACKs the stream's last response of `kind`. */
function ackOf(protocol: Protocol, envoy: FakeEnvoy, kind: ResourceKind): Uint8Array {
  return protocol.request(kind, envoy.lastNonce, envoy.names[kind], envoy.status.types[kind]?.sentVersion ?? "");
}

interface ChangeTimes {
  readonly cacheMs: number;
  readonly pushMs: number;
  readonly ackMs: number;
  readonly streams: number;
}

export interface PushBenchResult {
  readonly endpoint: ChangeTimes;
  readonly rule: ChangeTimes;
  /** Heap in use right after a forced full collection, at the start of round 3 and of the last round. */
  readonly liveHeapMb: { readonly round3: number; readonly last: number };
  /** Every stream's first exchange (all four types requested and ACKed), one stream after another; views translated on the way. */
  readonly connectMs: number;
  /** After the rounds, a service joins the mesh. */
  readonly join: JoinTimes;
}

/**
 * A service joining, in four steps: the cache taking the snapshot (every view
 * that can call it is translated again), refreshing every stream (new
 * clusters; in a mesh that declares no dependencies, every view's), the ACKs
 * of those responses, and each stream whose view gained endpoint names
 * subscribing to them, as Envoy does for the clusters it was just sent (delta:
 * the new names; SotW: the whole list again), answered and ACKed.
 */
interface JoinTimes {
  readonly cacheMs: number;
  readonly pushMs: number;
  readonly ackMs: number;
  readonly subscribeMs: number;
  readonly subscribers: number;
}

/** The fleet benchmark's mesh, with its service count and declared dependencies overridable (0: every view holds the whole mesh). */
export function runPushBench(
  proxies: number,
  rounds: number,
  overrides: Partial<Pick<MeshSpec, "services" | "dependencies">> = {},
  protocol: Protocol = PROTOCOLS.delta,
  joinMoves = false,
): PushBenchResult {
  const spec = { ...fleetMeshSpec(proxies), ...overrides };
  let rows = meshRows(spec);
  const model = meshModel(rows);
  let registry = model.registry;
  let rules = model.rules;
  const builder = new SnapshotBuilder();
  const logger = pino({ level: "silent" });
  const cache = new ResourceCache(translate, resourceGate(), logger);
  const metrics = new XdsMetrics();
  cache.setSnapshot(builder.build(registry, rules));

  const envoys: FakeEnvoy[] = [];
  // A view's proxies send the same first requests: encoded once per list of names, so the
  // connect time is the server's (a state-of-the-world ACK, which carries the names and a
  // nonce, is still encoded per stream).
  const firstRequests = new Map<readonly string[], Map<ResourceKind, Uint8Array>>();
  const firstRequest = (kind: ResourceKind, names: readonly string[]): Uint8Array => {
    let byKind = firstRequests.get(names);
    if (!byKind) firstRequests.set(names, (byKind = new Map()));
    let bytes = byKind.get(kind);
    if (!bytes) byKind.set(kind, (bytes = protocol.request(kind, "", names, "")));
    return bytes;
  };
  const connectStart = performance.now();
  const byView = new Map<string, FakeEnvoy[]>();
  for (let i = 0; i < proxies; i++) {
    const service = serviceName(1 + (i % (spec.services - 1)));
    const proxy: Proxy = { id: `proxy-${i}`, service, kind: "envoy", inboundPort: INBOUND_PORT, appPort: APP_PORT, outboundPort: 15001, userAgent: "envoy" };
    const sink = { write: (_body: Uint8Array, nonce: string) => ((envoy.lastNonce = nonce), true), onDrain: () => {} };
    const status: ProxyStatus = { streamId: i, proxy, protocol: protocol.name, connectedAt: "", types: {} };
    const stream = protocol.open(status, cache, sink, metrics, logger);
    const view = cache.viewFor(proxy, stream.viewKey);
    if (!view) throw new Error("no view");
    let peers = byView.get(stream.viewKey);
    if (!peers) byView.set(stream.viewKey, (peers = []));
    // A view's proxies subscribe to the same names: one list per view, so the live heap reported is the server's.
    const names = peers[0]?.names ?? { cluster: [], endpoint: [...view.resources.endpoint.keys()], listener: [], route: [...view.resources.route.keys()] };
    const envoy: FakeEnvoy = { stream, status, names, lastNonce: "" };
    envoys.push(envoy);
    peers.push(envoy);
    for (const kind of RESOURCE_KINDS) {
      protocol.handle(stream, firstRequest(kind, names[kind]));
      protocol.handle(stream, ackOf(protocol, envoy, kind));
    }
  }

  const connectMs = performance.now() - connectStart;
  firstRequests.clear();
  let changedViews: ReadonlySet<string> | null = null;
  cache.onChange((_, changed) => (changedViews = changed));
  const samples = { endpoint: [] as number[][], rule: [] as number[][] };
  let streams = { endpoint: 0, rule: 0 };
  const liveHeap: number[] = [];
  for (let round = 1; round <= rounds; round++) {
    for (const change of ["endpoint", "rule"] as const) {
      if (change === "endpoint") registry = moveInstance(registry, serviceName(0), round);
      else {
        rows = applyChange(rows, ruleChange(serviceName(0), round));
        rules = shareStructure(rules, meshModel(rows).rules);
      }
      const before = envoys.map((envoy) => envoy.lastNonce);
      (globalThis as { gc?: () => void }).gc?.();
      if (change === "endpoint") liveHeap.push(process.memoryUsage().heapUsed / 1e6);
      const t0 = performance.now();
      cache.setSnapshot(builder.build(registry, rules));
      const t1 = performance.now();
      for (const key of changedViews ?? byView.keys()) for (const envoy of byView.get(key) ?? []) envoy.stream.refresh();
      const t2 = performance.now();
      // The ACKs, encoded outside the timing as a client would.
      const kind = change === "endpoint" ? "endpoint" : "route";
      const acks = envoys.flatMap((envoy, i) => (envoy.lastNonce !== before[i] ? [[envoy, ackOf(protocol, envoy, kind)] as const] : []));
      const t3 = performance.now();
      for (const [envoy, bytes] of acks) protocol.handle(envoy.stream, bytes);
      const t4 = performance.now();
      streams = { ...streams, [change]: acks.length };
      if (round > 2) samples[change].push([t1 - t0, t2 - t1, t4 - t3]);
    }
  }
  const join = serviceJoins(spec, registry, rules, { cache, builder, protocol, envoys }, joinMoves);
  const median = (values: number[]) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;
  const summary = (change: "endpoint" | "rule") => ({
    cacheMs: median(samples[change].map((s) => s[0] as number)),
    pushMs: median(samples[change].map((s) => s[1] as number)),
    ackMs: median(samples[change].map((s) => s[2] as number)),
    streams: streams[change],
  });
  return {
    endpoint: summary("endpoint"),
    rule: summary("rule"),
    liveHeapMb: { round3: liveHeap[2] ?? Number.NaN, last: liveHeap[liveHeap.length - 1] ?? Number.NaN },
    connectMs,
    join,
  };
}

function serviceJoins(
  spec: MeshSpec,
  registry: RegistryState,
  rules: RuleSet,
  { cache, builder, protocol, envoys }: { cache: ResourceCache; builder: SnapshotBuilder; protocol: Protocol; envoys: FakeEnvoy[] },
  alsoMove: boolean,
): JoinTimes {
  // With `alsoMove`, an instance of the service every proxy calls moves in the same snapshot.
  const joined = addService(registry, spec, spec.services);
  const nextRegistry = alsoMove ? moveInstance(joined, serviceName(0), 999) : joined;
  const sentBefore = envoys.map((envoy) => envoy.lastNonce);
  const versionsBefore = envoys.map((envoy) => RESOURCE_KINDS.map((kind) => envoy.status.types[kind]?.sentVersion));
  (globalThis as { gc?: () => void }).gc?.();
  const t0 = performance.now();
  cache.setSnapshot(builder.build(nextRegistry, rules));
  const t1 = performance.now();
  for (const envoy of envoys) envoy.stream.refresh();
  const t2 = performance.now();
  const acks = envoys.flatMap((envoy, i) =>
    envoy.lastNonce === sentBefore[i]
      ? []
      : RESOURCE_KINDS.filter((kind, k) => envoy.status.types[kind]?.sentVersion !== versionsBefore[i]?.[k]).map((kind) => [envoy, ackOf(protocol, envoy, kind)] as const),
  );
  const t3 = performance.now();
  for (const [envoy, bytes] of acks) protocol.handle(envoy.stream, bytes);
  const t4 = performance.now();
  // Per view, the endpoint names it gained (the requests are encoded outside the timing, as a client would).
  const gained = new Map<string, { added: string[]; all: string[] }>();
  const requests: [FakeEnvoy, Uint8Array, readonly string[]][] = [];
  for (const envoy of envoys) {
    let names = gained.get(envoy.stream.viewKey);
    if (!names) {
      const all = [...(cache.viewFor(envoy.status.proxy, envoy.stream.viewKey)?.resources.endpoint.keys() ?? [])];
      const had = new Set(envoy.names.endpoint);
      names = { added: all.filter((name) => !had.has(name)), all };
      gained.set(envoy.stream.viewKey, names);
    }
    if (names.added.length === 0) continue;
    requests.push([envoy, protocol.request("endpoint", "", protocol.name === "delta" ? names.added : names.all, envoy.status.types.endpoint?.sentVersion ?? ""), names.all]);
  }
  // Each ACK is encoded after its response (it carries the nonce), outside the timing.
  let subscribeMs = 0;
  for (const [envoy, bytes, all] of requests) {
    let t = performance.now();
    protocol.handle(envoy.stream, bytes);
    subscribeMs += performance.now() - t;
    const ack = protocol.request("endpoint", envoy.lastNonce, all, envoy.status.types.endpoint?.sentVersion ?? "");
    t = performance.now();
    protocol.handle(envoy.stream, ack);
    subscribeMs += performance.now() - t;
  }
  return { cacheMs: t1 - t0, pushMs: t2 - t1, ackMs: t4 - t3, subscribeMs, subscribers: requests.length };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  asServerProcess();
  const proxies = numberOption("proxies", 10_000);
  const rounds = Math.max(3, numberOption("rounds", 12));
  const fleet = fleetMeshSpec(proxies);
  const services = numberOption("services", fleet.services);
  const dependencies = numberOption("dependencies", fleet.dependencies);
  const protocol = option("protocol", "delta");
  if (protocol !== "delta" && protocol !== "sotw") throw new Error(`--protocol: delta or sotw, not ${protocol}`);
  const joinMoves = flag("join-moves");
  const result = runPushBench(proxies, rounds, { services, dependencies }, PROTOCOLS[protocol], joinMoves);
  const scope = dependencies === 0 ? "none declared: every view holds the whole mesh" : `${dependencies} declared per service`;
  console.log(`${proxies} ${protocol} streams over ${services} services (dependencies: ${scope}), wall time per change (median):\n`);
  console.log("| change | streams pushed | cache takes the snapshot (ms) | refresh every stream (ms) | handle every ACK (ms) |");
  console.log("| --- | ---: | ---: | ---: | ---: |");
  for (const change of ["endpoint", "rule"] as const) {
    const r = result[change];
    console.log(`| ${change} | ${r.streams} | ${r.cacheMs.toFixed(1)} | ${r.pushMs.toFixed(1)} | ${r.ackMs.toFixed(1)} |`);
  }
  const heap = result.liveHeapMb;
  console.log(`\nLive heap after a full collection: ${heap.round3.toFixed(1)} MB at round 3, ${heap.last.toFixed(1)} MB at round ${rounds}.`);
  console.log(`Connecting every stream (first exchange, views translated on the way): ${result.connectMs.toFixed(0)} ms.`);
  const join = result.join;
  console.log(
    `A service joins${joinMoves ? " as an instance moves" : ""}: the cache takes the snapshot in ${join.cacheMs.toFixed(0)} ms, refreshing every stream takes ${join.pushMs.toFixed(0)} ms, their ACKs ${join.ackMs.toFixed(0)} ms, ` +
      `and ${join.subscribers} streams subscribing to its endpoints (answered and ACKed) ${join.subscribeMs.toFixed(0)} ms.`,
  );
}
