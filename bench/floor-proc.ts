/**
 * The floor: the least a server must do to serve the same fleet. Same gRPC stack
 * and options as Signalbox, same streams, and byte-for-byte the responses
 * Signalbox sends (computed here, before any proxy connects, with Signalbox's
 * own translation of the same mesh). At run time it only:
 *   - reads each request's type, nonce and (first request) node cluster with a
 *     tiny wire scan, answering a request without a nonce (the first for a type)
 *     with the pre-encoded response for the proxy's view;
 *   - on a change order from the benchmark, writes the pre-encoded response of
 *     that change to every stream whose view it affects, in one loop.
 * No versions, no ACK tracking, no translation, no database. Signalbox's cost is
 * reported as a ratio to this.
 */
import * as grpc from "@grpc/grpc-js";
import { pino } from "pino";
import { RESOURCE_KINDS, TYPE_URLS, kindOfTypeUrl, type ResourceKind } from "../src/translate/resource-types.ts";
import { buildSnapshot } from "../src/translate/build-snapshot.ts";
import { translate } from "../src/translate/translate.ts";
import { ResourceCache, type ProxyView } from "../src/xds/cache.ts";
import { encodeDeltaBody, withNonce } from "../src/xds/encoding.ts";
import { asServerProcess } from "./cli.ts";
import { APP_PORT, applyChange, INBOUND_PORT, meshModel, meshRows, type Change, type MeshSpec } from "./mesh.ts";
import { collectStats, handleCommon, type ToServer } from "./proc-common.ts";
import { nowMs, parseRequest } from "./wire.ts";

type Message = ToServer | { type: "start"; spec: MeshSpec; changes: Change[]; protocol: "sotw" | "delta" } | { type: "change"; index: number };

// The same process settings as Signalbox (the fleet passes both the same V8 flags).
asServerProcess();

const NONCE = "1";
type Responses = Map<string, Partial<Record<ResourceKind, Uint8Array>>>;

let initial: Responses = new Map();
let changeResponses: Responses[] = [];
const streamsByView = new Map<string, Set<grpc.ServerDuplexStream<Buffer, Uint8Array>>>();
let streamCount = 0;
let lastChangeAt = 0;

/** Pre-encodes every response the fleet will get: initial ones, and per change the ones it causes. */
function precompute(spec: MeshSpec, changes: readonly Change[], protocol: "sotw" | "delta"): void {
  const cache = new ResourceCache(translate, () => [], pino({ level: "silent" }));
  let rows = meshRows(spec);
  const views: string[] = [];
  for (const service of rows.services.slice(1)) {
    cache.retain(proxyOf(service.name));
    views.push(service.name);
  }
  const viewsNow = (): Map<string, ProxyView> => {
    const out = new Map<string, ProxyView>();
    for (const name of views) out.set(name, cache.viewFor(proxyOf(name)) as ProxyView);
    return out;
  };
  const model = meshModel(rows);
  cache.setSnapshot(buildSnapshot(model.registry, model.rules));
  let before = viewsNow();
  for (const [name, view] of before) {
    const responses: Partial<Record<ResourceKind, Uint8Array>> = {};
    for (const kind of RESOURCE_KINDS) {
      const target = view.all(kind);
      responses[kind] =
        protocol === "sotw"
          ? withNonce(target.sotwBody(TYPE_URLS[kind]), NONCE)
          : withNonce(encodeDeltaBody(TYPE_URLS[kind], target.version, [...target.resources.values()], []), NONCE);
    }
    initial.set(name, responses);
  }
  changeResponses = [];
  for (const change of changes) {
    rows = applyChange(rows, change);
    const next = meshModel(rows);
    cache.setSnapshot(buildSnapshot(next.registry, next.rules));
    const after = viewsNow();
    const responses: Responses = new Map();
    for (const [name, view] of after) {
      const old = before.get(name) as ProxyView;
      const perKind: Partial<Record<ResourceKind, Uint8Array>> = {};
      for (const kind of RESOURCE_KINDS) {
        const target = view.all(kind);
        const previous = old.all(kind);
        if (target.version === previous.version) continue;
        if (protocol === "sotw") {
          perKind[kind] = withNonce(target.sotwBody(TYPE_URLS[kind]), NONCE);
        } else {
          const changed = [...target.resources.values()].filter((r) => previous.resources.get(r.name)?.version !== r.version);
          const removed = [...previous.resources.keys()].filter((n) => !target.resources.has(n));
          perKind[kind] = withNonce(encodeDeltaBody(TYPE_URLS[kind], target.version, changed, removed), NONCE);
        }
      }
      if (Object.keys(perKind).length > 0) responses.set(name, perKind);
    }
    changeResponses.push(responses);
    before = after;
  }
}

function proxyOf(service: string) {
  return { id: service, service, kind: "envoy" as const, inboundPort: INBOUND_PORT, appPort: APP_PORT, outboundPort: 15001, userAgent: "envoy" };
}

function bidi(path: string): grpc.MethodDefinition<Buffer, Uint8Array> {
  return {
    path,
    requestStream: true,
    responseStream: true,
    requestSerialize: (value: Buffer) => value,
    requestDeserialize: (bytes: Buffer) => bytes,
    responseSerialize: (value: Uint8Array) => Buffer.from(value.buffer, value.byteOffset, value.byteLength),
    responseDeserialize: (bytes: Buffer) => bytes,
  };
}

function serve(call: grpc.ServerDuplexStream<Buffer, Uint8Array>, delta: boolean): void {
  let view: string | null = null;
  const close = (): void => {
    if (view === null) return;
    streamsByView.get(view)?.delete(call);
    streamCount--;
    view = null;
  };
  call.on("data", (bytes: Buffer) => {
    const request = parseRequest(bytes, delta);
    if (view === null) {
      view = request.cluster ?? "";
      let set = streamsByView.get(view);
      if (!set) streamsByView.set(view, (set = new Set()));
      set.add(call);
      streamCount++;
    }
    if (request.nonce !== "") return;
    const kind = kindOfTypeUrl(request.typeUrl);
    const response = kind ? initial.get(view)?.[kind] : undefined;
    if (response) call.write(response);
  });
  call.on("end", () => {
    close();
    call.end();
  });
  call.on("error", close);
  call.on("cancelled", close);
  call.on("close", close);
}

function change(index: number): void {
  lastChangeAt = nowMs();
  const responses = changeResponses[index];
  if (!responses) return;
  for (const [view, perKind] of responses) {
    const streams = streamsByView.get(view);
    if (!streams) continue;
    for (const kind of RESOURCE_KINDS) {
      const bytes = perKind[kind];
      if (!bytes) continue;
      for (const call of streams) call.write(bytes);
    }
  }
}

process.on("message", (message: Message) => {
  void (async () => {
    switch (message.type) {
      case "start": {
        initial = new Map();
        precompute(message.spec, message.changes, message.protocol);
        // The same server options as Signalbox's (src/xds/server.ts).
        const server = new grpc.Server({
          "grpc.max_receive_message_length": 16 * 1024 * 1024,
          "grpc.keepalive_time_ms": 30_000,
          "grpc.keepalive_timeout_ms": 10_000,
          "grpc.keepalive_permit_without_calls": 1,
          "grpc.http2.min_ping_interval_without_data_ms": 5_000,
        });
        server.addService(
          { StreamAggregatedResources: bidi("/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources") } as grpc.ServiceDefinition,
          { StreamAggregatedResources: (call: grpc.ServerDuplexStream<Buffer, Uint8Array>) => serve(call, false) },
        );
        server.addService(
          { DeltaAggregatedResources: bidi("/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources") } as grpc.ServiceDefinition,
          { DeltaAggregatedResources: (call: grpc.ServerDuplexStream<Buffer, Uint8Array>) => serve(call, true) },
        );
        const port = await new Promise<number>((resolve, reject) =>
          server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
        );
        process.send?.({ type: "listening", port });
        return;
      }
      case "change":
        change(message.index);
        return;
      case "stop":
        process.exit(0);
        return;
      default:
        await handleCommon(message, () => collectStats(streamCount, lastChangeAt));
    }
  })().catch((error: Error) => process.send?.({ type: "error", message: error.stack ?? error.message }));
});
process.on("disconnect", () => process.exit(0));
process.send?.({ type: "alive" });
