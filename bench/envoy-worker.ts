/**
 * A process of simulated Envoys (forked by bench/fleet.ts). Each proxy holds one
 * ADS stream and does Envoy's exchange, state of the world or delta:
 *   CDS wildcard -> EDS for the EDS clusters it got -> LDS wildcard -> RDS for
 *   the route configurations its listeners name,
 * ACKing every response (and re-subscribing when the names it needs change).
 * Streams are spread over several HTTP/2 connections per process. Responses are
 * read with a small wire parser, not decoded, so the fleet stays cheap.
 *
 * For a change the parent names a marker (a new endpoint address, a route's
 * header value): each expected proxy timestamps the response of the right type
 * that first contains it (and ACKs it). Responses and bytes are counted per
 * proxy from the moment the change is announced.
 */
import * as grpc from "@grpc/grpc-js";
import {
  clusterEdsName,
  deltaRequest,
  encodeNode,
  listenerRouteNames,
  nowMs,
  parseDeltaResponse,
  parseSotwResponse,
  sotwRequest,
} from "./wire.ts";

export const TYPE = {
  cluster: "type.googleapis.com/envoy.config.cluster.v3.Cluster",
  endpoint: "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
  listener: "type.googleapis.com/envoy.config.listener.v3.Listener",
  route: "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
} as const;

const SOTW_PATH = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
const DELTA_PATH = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

export interface WorkerProxy {
  readonly id: string;
  readonly service: string;
}

export type ToWorker =
  | { type: "init"; target: string; protocol: "sotw" | "delta"; proxies: WorkerProxy[]; channels: number; inboundPort: number; appPort: number }
  | { type: "connect"; timeoutMs: number }
  | { type: "expect"; id: number; kind: "endpoint" | "rule"; marker: string; services: string[]; timeoutMs: number }
  | { type: "counters"; id: number }
  | { type: "stop" };

export type FromWorker =
  | { type: "alive" }
  | { type: "ready" }
  | { type: "connected"; times: number[]; missing: number; startedAt: number }
  | { type: "expecting"; id: number }
  | { type: "converged"; id: number; times: number[]; missing: number }
  | { type: "counters"; id: number; expected: number; affected: number; responses: number; bytes: number; expectedResponses: number; expectedBytes: number; maxResponses: number; cpuMs: number }
  | { type: "error"; message: string };

interface Expectation {
  readonly id: number;
  readonly typeUrl: string;
  readonly marker: Buffer;
  readonly expected: Set<SimProxy>;
  readonly times: number[];
  timer: NodeJS.Timeout | null;
}

let expectation: Expectation | null = null;
let connectWaiter: { pending: number; times: number[]; timer: NodeJS.Timeout | null; startedAt: number } | null = null;

function send(message: FromWorker): void {
  process.send?.(message);
}

abstract class SimProxy {
  call: grpc.ClientDuplexStream<Uint8Array, Buffer> | null = null;
  initialDone = false;
  responses = 0;
  bytes = 0;
  convergedFor = -1;
  protected readonly node: Uint8Array;

  constructor(readonly proxy: WorkerProxy, inboundPort: number, appPort: number) {
    this.node = encodeNode(proxy.id, proxy.service, inboundPort, appPort);
  }

  abstract start(client: grpc.Client): void;

  protected open(client: grpc.Client, path: string): void {
    const call = client.makeBidiStreamRequest<Uint8Array, Buffer>(path, (value) => Buffer.from(value.buffer, value.byteOffset, value.byteLength), (bytes) => bytes);
    call.on("data", (bytes: Buffer) => {
      this.responses++;
      this.bytes += bytes.length;
      try {
        this.onResponse(bytes);
      } catch (error) {
        send({ type: "error", message: `${this.proxy.id}: ${(error as Error).message}` });
      }
    });
    call.on("error", (error: grpc.ServiceError) => {
      if (error.code !== grpc.status.CANCELLED) send({ type: "error", message: `${this.proxy.id}: stream error ${error.code} ${error.details}` });
    });
    this.call = call;
  }

  protected abstract onResponse(bytes: Buffer): void;

  protected write(bytes: Uint8Array): void {
    this.call?.write(bytes);
  }

  protected initialConverged(): void {
    if (this.initialDone) return;
    this.initialDone = true;
    if (connectWaiter) {
      connectWaiter.times.push(nowMs());
      if (--connectWaiter.pending === 0) finishConnect();
    }
  }

  protected checkMarker(typeUrl: string, bytes: Buffer): void {
    const e = expectation;
    if (!e || e.typeUrl !== typeUrl || this.convergedFor === e.id || !e.expected.has(this)) return;
    if (bytes.indexOf(e.marker) < 0) return;
    this.convergedFor = e.id;
    e.times.push(nowMs());
    if (e.times.length === e.expected.size) finishExpectation();
  }
}

class SotwProxy extends SimProxy {
  private readonly state = {
    cluster: { version: "", nonce: "" },
    endpoint: { version: "", nonce: "" },
    listener: { version: "", nonce: "" },
    route: { version: "", nonce: "" },
  };
  private edsNames: string[] = [];
  private rdsNames: string[] = [];
  private ldsRequested = false;

  start(client: grpc.Client): void {
    this.open(client, SOTW_PATH);
    this.write(sotwRequest(TYPE.cluster, "", "", [], this.node));
  }

  protected onResponse(bytes: Buffer): void {
    const response = parseSotwResponse(bytes);
    switch (response.typeUrl) {
      case TYPE.cluster: {
        this.state.cluster = { version: response.version, nonce: response.nonce };
        this.write(sotwRequest(TYPE.cluster, response.version, response.nonce, [], null));
        const names: string[] = [];
        for (const span of response.resources) {
          const eds = clusterEdsName(bytes, span);
          if (eds !== null) names.push(eds);
        }
        if (!sameNames(names, this.edsNames)) {
          this.edsNames = names;
          this.write(sotwRequest(TYPE.endpoint, this.state.endpoint.version, this.state.endpoint.nonce, names, null));
        }
        break;
      }
      case TYPE.endpoint:
        this.state.endpoint = { version: response.version, nonce: response.nonce };
        this.write(sotwRequest(TYPE.endpoint, response.version, response.nonce, this.edsNames, null));
        if (!this.ldsRequested) {
          this.ldsRequested = true;
          this.write(sotwRequest(TYPE.listener, "", "", [], null));
        }
        break;
      case TYPE.listener: {
        this.state.listener = { version: response.version, nonce: response.nonce };
        this.write(sotwRequest(TYPE.listener, response.version, response.nonce, [], null));
        const names = response.resources.flatMap((span) => listenerRouteNames(bytes, span));
        if (!sameNames(names, this.rdsNames)) {
          this.rdsNames = names;
          this.write(sotwRequest(TYPE.route, this.state.route.version, this.state.route.nonce, names, null));
        }
        break;
      }
      case TYPE.route:
        this.state.route = { version: response.version, nonce: response.nonce };
        this.write(sotwRequest(TYPE.route, response.version, response.nonce, this.rdsNames, null));
        this.initialConverged();
        break;
    }
    this.checkMarker(response.typeUrl, bytes);
  }
}

class DeltaProxy extends SimProxy {
  /** Cluster name -> EDS name (null for non-EDS clusters). */
  private readonly clusters = new Map<string, string | null>();
  private readonly listeners = new Map<string, string[]>();
  private edsNames = new Set<string>();
  private rdsNames = new Set<string>();
  private ldsRequested = false;

  start(client: grpc.Client): void {
    this.open(client, DELTA_PATH);
    this.write(deltaRequest(TYPE.cluster, "", [], [], this.node));
  }

  protected onResponse(bytes: Buffer): void {
    const response = parseDeltaResponse(bytes);
    this.write(deltaRequest(response.typeUrl, response.nonce, [], [], null));
    switch (response.typeUrl) {
      case TYPE.cluster: {
        for (const resource of response.resources) this.clusters.set(resource.name, clusterEdsName(bytes, resource.value));
        for (const name of response.removed) this.clusters.delete(name);
        const wanted = new Set<string>();
        for (const eds of this.clusters.values()) if (eds !== null) wanted.add(eds);
        this.edsNames = this.resubscribe(TYPE.endpoint, this.edsNames, wanted);
        break;
      }
      case TYPE.endpoint:
        if (!this.ldsRequested) {
          this.ldsRequested = true;
          this.write(deltaRequest(TYPE.listener, "", [], [], null));
        }
        break;
      case TYPE.listener: {
        for (const resource of response.resources) this.listeners.set(resource.name, listenerRouteNames(bytes, resource.value));
        for (const name of response.removed) this.listeners.delete(name);
        const wanted = new Set<string>();
        for (const names of this.listeners.values()) for (const name of names) wanted.add(name);
        this.rdsNames = this.resubscribe(TYPE.route, this.rdsNames, wanted);
        break;
      }
      case TYPE.route:
        if (response.resources.length > 0 && this.rdsNames.size > 0) this.initialConverged();
        break;
    }
    this.checkMarker(response.typeUrl, bytes);
  }

  private resubscribe(typeUrl: string, current: Set<string>, wanted: Set<string>): Set<string> {
    const subscribe = [...wanted].filter((name) => !current.has(name));
    const unsubscribe = [...current].filter((name) => !wanted.has(name));
    if (subscribe.length > 0 || unsubscribe.length > 0) this.write(deltaRequest(typeUrl, "", subscribe, unsubscribe, null));
    return wanted;
  }
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const set = new Set(a);
  return b.every((name) => set.has(name));
}

// --- the process ------------------------------------------------------------------

let proxies: SimProxy[] = [];
let cpuAtExpect = 0;

function cpuMs(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
}
let clients: grpc.Client[] = [];

function finishConnect(): void {
  const waiter = connectWaiter;
  if (!waiter) return;
  connectWaiter = null;
  if (waiter.timer) clearTimeout(waiter.timer);
  send({ type: "connected", times: waiter.times, missing: waiter.pending, startedAt: waiter.startedAt });
}

function finishExpectation(): void {
  const e = expectation;
  if (!e || e.timer === null) return;
  clearTimeout(e.timer);
  e.timer = null;
  send({ type: "converged", id: e.id, times: e.times, missing: e.expected.size - e.times.length });
}

process.on("message", (message: ToWorker) => {
  switch (message.type) {
    case "init": {
      const options: grpc.ChannelOptions = {
        "grpc.use_local_subchannel_pool": 1,
        "grpc-node.flow_control_window": 16 * 1024 * 1024,
        "grpc.max_receive_message_length": 64 * 1024 * 1024,
        "grpc.keepalive_time_ms": 60_000,
      };
      clients = Array.from({ length: message.channels }, () => new grpc.Client(message.target, grpc.credentials.createInsecure(), options));
      proxies = message.proxies.map((p) =>
        message.protocol === "delta" ? new DeltaProxy(p, message.inboundPort, message.appPort) : new SotwProxy(p, message.inboundPort, message.appPort),
      );
      void Promise.all(
        clients.map((client) => new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + 10_000, (error) => (error ? reject(error) : resolve())))),
      ).then(
        () => send({ type: "ready" }),
        (error: Error) => send({ type: "error", message: `cannot connect: ${error.message}` }),
      );
      break;
    }
    case "connect": {
      connectWaiter = { pending: proxies.length, times: [], timer: null, startedAt: nowMs() };
      connectWaiter.timer = setTimeout(finishConnect, message.timeoutMs);
      let index = 0;
      const step = (): void => {
        const end = Math.min(index + 250, proxies.length);
        for (; index < end; index++) proxies[index]!.start(clients[index % clients.length]!);
        if (index < proxies.length) setImmediate(step);
      };
      step();
      break;
    }
    case "expect": {
      cpuAtExpect = cpuMs();
      const services = new Set(message.services);
      for (const proxy of proxies) {
        proxy.responses = 0;
        proxy.bytes = 0;
      }
      const expected = new Set(proxies.filter((p) => services.has(p.proxy.service)));
      expectation = {
        id: message.id,
        typeUrl: message.kind === "endpoint" ? TYPE.endpoint : TYPE.route,
        marker: Buffer.from(message.marker),
        expected,
        times: [],
        timer: setTimeout(finishExpectation, message.timeoutMs),
      };
      send({ type: "expecting", id: message.id });
      if (expected.size === 0) finishExpectation();
      break;
    }
    case "counters": {
      const expected = expectation?.expected ?? new Set<SimProxy>();
      let responses = 0;
      let bytes = 0;
      let affected = 0;
      let expectedResponses = 0;
      let expectedBytes = 0;
      let maxResponses = 0;
      for (const proxy of proxies) {
        responses += proxy.responses;
        bytes += proxy.bytes;
        if (proxy.responses > 0) affected++;
        if (expected.has(proxy)) {
          expectedResponses += proxy.responses;
          expectedBytes += proxy.bytes;
          maxResponses = Math.max(maxResponses, proxy.responses);
        }
      }
      send({ type: "counters", id: message.id, expected: expected.size, affected, responses, bytes, expectedResponses, expectedBytes, maxResponses, cpuMs: cpuMs() - cpuAtExpect });
      break;
    }
    case "stop":
      for (const proxy of proxies) proxy.call?.cancel();
      for (const client of clients) client.close();
      setTimeout(() => process.exit(0), 100);
      break;
  }
});

process.on("disconnect", () => process.exit(0));
send({ type: "alive" });
