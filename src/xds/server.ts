import * as grpc from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { Proxy } from "../model/proxy.ts";
import { RESOURCE_KINDS, type ResourceKind } from "../translate/resource-types.ts";
import type { ResourceCache } from "./cache.ts";
import { DeltaStream } from "./delta-stream.ts";
import { EndpointPeers } from "./endpoint-peers.ts";
import type { XdsMetrics } from "./metrics.ts";
import { withNonce, withNonceSize, writeWithNonce } from "./encoding.ts";
import { parseProxy } from "./node.ts";
import { ProxyDirectory, type ProxyStatus } from "./proxy-status.ts";
import { PushScheduler } from "./push-scheduler.ts";
import {
  decodeDeltaDiscoveryRequest,
  decodeDiscoveryRequest,
  type Decoded,
  type DeltaRequest,
  type SotwRequest,
} from "./request-decode.ts";
import { SotwStream, UnsupportedTypeError, type ResponseSink } from "./sotw-stream.ts";

/**
 * The gRPC side: ADS plus the per-type discovery services. Messages cross the
 * wire as raw bytes; requests are decoded here (so a garbage request gets a clear
 * INVALID_ARGUMENT) and responses are written pre-encoded.
 */

/** A response as handed to grpc-js: the body shared by every stream that gets it, and this stream's nonce. */
interface Outgoing {
  readonly body: Uint8Array;
  readonly nonce: string;
}

type RawDuplex = grpc.ServerDuplexStream<Buffer, Outgoing>;

/** Responses up to this size are joined in one reused buffer. */
const SCRATCH_MAX = 1 << 20;
let scratch = Buffer.allocUnsafeSlow(64 * 1024);

/**
 * The response's bytes: `body` followed by the nonce as field 5 (withNonce,
 * encoding.ts). grpc-js copies what this returns into its framed message
 * before it calls this again (serializeMessage), so the bytes are joined in one
 * reused buffer instead of a new one per stream and response.
 */
function serializeResponse(response: Outgoing): Buffer {
  const { body, nonce } = response;
  const size = withNonceSize(body, nonce);
  if (size > scratch.length) {
    if (size > SCRATCH_MAX) return withNonce(body, nonce);
    scratch = Buffer.allocUnsafeSlow(Math.min(SCRATCH_MAX, Math.max(size, scratch.length * 2)));
  }
  writeWithNonce(scratch, body, nonce);
  return scratch.subarray(0, size);
}

/** A gRPC call as a stream's sink: a class, so the 10,000 streams of a fleet share its methods instead of holding two closures each. */
class CallSink implements ResponseSink {
  constructor(private readonly call: RawDuplex) {}

  write(body: Uint8Array, nonce: string): boolean {
    return this.call.write({ body, nonce });
  }

  onDrain(callback: () => void): void {
    this.call.once("drain", callback);
  }
}

function bidi(path: string): grpc.MethodDefinition<Buffer, Outgoing> {
  return {
    path,
    requestStream: true,
    responseStream: true,
    requestSerialize: (value: Buffer) => value,
    requestDeserialize: (bytes: Buffer) => bytes,
    responseSerialize: serializeResponse,
    responseDeserialize: (bytes: Buffer) => ({ body: bytes, nonce: "" }),
  };
}

interface ServiceSpec {
  readonly path: string;
  readonly method: string;
  readonly kinds: readonly ResourceKind[];
}

const SOTW_SERVICES: readonly ServiceSpec[] = [
  { path: "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources", method: "StreamAggregatedResources", kinds: RESOURCE_KINDS },
  { path: "/envoy.service.cluster.v3.ClusterDiscoveryService/StreamClusters", method: "StreamClusters", kinds: ["cluster"] },
  { path: "/envoy.service.endpoint.v3.EndpointDiscoveryService/StreamEndpoints", method: "StreamEndpoints", kinds: ["endpoint"] },
  { path: "/envoy.service.listener.v3.ListenerDiscoveryService/StreamListeners", method: "StreamListeners", kinds: ["listener"] },
  { path: "/envoy.service.route.v3.RouteDiscoveryService/StreamRoutes", method: "StreamRoutes", kinds: ["route"] },
];

const DELTA_SERVICES: readonly ServiceSpec[] = [
  { path: "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources", method: "DeltaAggregatedResources", kinds: RESOURCE_KINDS },
  { path: "/envoy.service.cluster.v3.ClusterDiscoveryService/DeltaClusters", method: "DeltaClusters", kinds: ["cluster"] },
  { path: "/envoy.service.endpoint.v3.EndpointDiscoveryService/DeltaEndpoints", method: "DeltaEndpoints", kinds: ["endpoint"] },
  { path: "/envoy.service.listener.v3.ListenerDiscoveryService/DeltaListeners", method: "DeltaListeners", kinds: ["listener"] },
  { path: "/envoy.service.route.v3.RouteDiscoveryService/DeltaRoutes", method: "DeltaRoutes", kinds: ["route"] },
];

/** What the server needs of a stream, whichever protocol it speaks. */
interface ServedStream<Request> {
  readonly status: ProxyStatus;
  readonly viewKey: string;
  handleRequest(request: Request): void;
  refresh(): void;
  close(): void;
}

/** How one protocol variant decodes requests and makes streams. */
interface Protocol<Request> {
  readonly name: "sotw" | "delta";
  readonly label: string;
  decode(bytes: Buffer): Decoded<Request>;
  create(status: ProxyStatus, sink: ResponseSink, kinds: readonly ResourceKind[]): ServedStream<Request>;
}

export interface XdsServerOptions {
  readonly cache: ResourceCache;
  readonly metrics: XdsMetrics;
  readonly logger: Logger;
  /** At most this many streams are refreshed per event-loop turn during a push (default 10,000). */
  readonly pushBatchSize?: number;
  /** ... and for at most this long (default 100 ms), so ACKs and new connections are served between slices. */
  readonly pushSliceMs?: number;
}

type AnyStream = ServedStream<never>;

export class XdsServer {
  readonly directory = new ProxyDirectory();
  readonly scheduler: PushScheduler;
  private readonly server = new grpc.Server({
    "grpc.max_receive_message_length": 16 * 1024 * 1024,
    "grpc.keepalive_time_ms": 30_000,
    "grpc.keepalive_timeout_ms": 10_000,
    "grpc.keepalive_permit_without_calls": 1,
    "grpc.http2.min_ping_interval_without_data_ms": 5_000,
  });
  /** Open streams by the view they serve, so a change visits only the streams it affects. */
  private readonly streamsByView = new Map<string, Set<AnyStream>>();
  private nextStreamId = 1;

  constructor(private readonly options: XdsServerOptions) {
    // Large slices: writing every affected stream first and reading their ACKs
    // after converges a fleet far sooner than interleaving small slices with ACK
    // processing (docs/benchmarks.md); the event loop still yields every 100 ms.
    this.scheduler = new PushScheduler(
      options.pushBatchSize ?? 10_000,
      (seconds) => options.metrics.pushDuration.observe(seconds),
      options.pushSliceMs ?? 100,
    );
    options.cache.onChange((_generation, changed) => {
      if (changed === null) {
        for (const streams of this.streamsByView.values()) this.scheduler.schedule(streams);
        return;
      }
      for (const key of changed) {
        const streams = this.streamsByView.get(key);
        if (streams) this.scheduler.schedule(streams);
      }
    });
    const sotw: Protocol<SotwRequest> = {
      name: "sotw",
      label: "DiscoveryRequest",
      decode: decodeDiscoveryRequest,
      create: (status, sink, kinds) => new SotwStream(status, options.cache, sink, options.metrics, options.logger, kinds),
    };
    // A proxy's CDS-only delta stream tells its EDS-only ones of updated clusters.
    const endpointPeers = new EndpointPeers();
    const delta: Protocol<DeltaRequest> = {
      name: "delta",
      label: "DeltaDiscoveryRequest",
      decode: decodeDeltaDiscoveryRequest,
      create: (status, sink, kinds) => new DeltaStream(status, options.cache, sink, options.metrics, options.logger, kinds, endpointPeers),
    };
    for (const service of SOTW_SERVICES) this.addService(service, sotw);
    for (const service of DELTA_SERVICES) this.addService(service, delta);
  }

  /** Binds and starts serving; returns the bound port (useful with port 0). */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (error, bound) => {
        if (error) reject(error);
        else resolve(bound);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.tryShutdown(() => resolve());
      setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 2_000).unref();
    });
  }

  /** Open streams. */
  get streamCount(): number {
    let count = 0;
    for (const streams of this.streamsByView.values()) count += streams.size;
    return count;
  }

  private addService<Request>(service: ServiceSpec, protocol: Protocol<Request>): void {
    this.server.addService(
      { [service.method]: bidi(service.path) } as grpc.ServiceDefinition,
      { [service.method]: (call: RawDuplex) => this.serve(call, service.kinds, protocol) },
    );
  }

  private serve<Request>(call: RawDuplex, kinds: readonly ResourceKind[], protocol: Protocol<Request>): void {
    const { metrics, logger } = this.options;
    let stream: ServedStream<Request> | null = null;
    let closed = false;
    const fail = (code: grpc.status, details: string, reason: string): void => {
      metrics.badRequests.inc({ reason });
      logger.warn({ peer: call.getPeer(), proxy: stream?.status.proxy.id, reason, details }, "closing xDS stream");
      call.emit("error", { code, details });
    };
    const cleanup = (): void => {
      if (closed || !stream) return;
      closed = true;
      const served = stream as unknown as AnyStream;
      const peers = this.streamsByView.get(served.viewKey);
      peers?.delete(served);
      if (peers?.size === 0) this.streamsByView.delete(served.viewKey);
      this.scheduler.forget(served);
      served.close();
      this.directory.remove(stream.status.streamId);
      metrics.connectedProxies.dec({ kind: stream.status.proxy.kind, protocol: protocol.name });
      logger.info({ proxy: stream.status.proxy.id }, "xDS stream closed");
    };
    call.on("data", (bytes: Buffer) => {
      if (closed) return;
      let decoded: Decoded<Request>;
      let proxy: Proxy | null = null;
      try {
        decoded = protocol.decode(bytes);
        // The node is read once, from the stream's first request (Envoy may repeat it in every one).
        if (!stream) proxy = parseProxy(decoded.node());
      } catch (error) {
        fail(grpc.status.INVALID_ARGUMENT, `malformed ${protocol.label}: ${(error as Error).message}`, "malformed");
        return;
      }
      const request = decoded.request;
      if (!stream) {
        if (!proxy) return;
        const status: ProxyStatus = {
          streamId: this.nextStreamId++,
          proxy,
          protocol: protocol.name,
          connectedAt: new Date().toISOString(),
          types: {},
        };
        stream = protocol.create(status, new CallSink(call), kinds);
        const served = stream as unknown as AnyStream;
        let peers = this.streamsByView.get(served.viewKey);
        if (!peers) this.streamsByView.set(served.viewKey, (peers = new Set()));
        peers.add(served);
        this.directory.add(status);
        metrics.connectedProxies.inc({ kind: proxy.kind, protocol: protocol.name });
        logger.info({ proxy: proxy.id, service: proxy.service, kind: proxy.kind, agent: proxy.userAgent, protocol: protocol.name }, "xDS stream opened");
      }
      const served = stream;
      try {
        served.handleRequest(request);
      } catch (error) {
        if (error instanceof UnsupportedTypeError) fail(grpc.status.INVALID_ARGUMENT, error.message, "unsupported_type");
        else {
          logger.error({ err: error, proxy: served.status.proxy.id }, "failed to serve xDS request");
          fail(grpc.status.INTERNAL, `signalbox failed to serve the request: ${(error as Error).message}`, "internal");
        }
      }
    });
    call.on("end", () => {
      cleanup();
      call.end();
    });
    call.on("error", cleanup);
    call.on("cancelled", cleanup);
    call.on("close", cleanup);
  }
}
