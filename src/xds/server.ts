import * as grpc from "@grpc/grpc-js";
import { fromBinary } from "@bufbuild/protobuf";
import type { Logger } from "pino";
import { DiscoveryRequestSchema, type DiscoveryRequest } from "../gen/envoy/service/discovery/v3/discovery_pb.ts";
import { RESOURCE_KINDS, type ResourceKind } from "../translate/resource-types.ts";
import type { ResourceCache } from "./cache.ts";
import type { XdsMetrics } from "./metrics.ts";
import { parseProxy } from "./node.ts";
import { ProxyDirectory } from "./proxy-status.ts";
import { PushScheduler } from "./push-scheduler.ts";
import { SotwStream, UnsupportedTypeError } from "./sotw-stream.ts";

/**
 * The gRPC side: ADS plus the per-type discovery services. Messages cross the
 * wire as raw bytes; requests are decoded here (so a garbage request gets a clear
 * INVALID_ARGUMENT) and responses are written pre-encoded.
 */

type RawDuplex = grpc.ServerDuplexStream<Buffer, Uint8Array>;

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

const SOTW_SERVICES: Array<{ path: string; method: string; kinds: readonly ResourceKind[] }> = [
  { path: "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources", method: "StreamAggregatedResources", kinds: RESOURCE_KINDS },
  { path: "/envoy.service.cluster.v3.ClusterDiscoveryService/StreamClusters", method: "StreamClusters", kinds: ["cluster"] },
  { path: "/envoy.service.endpoint.v3.EndpointDiscoveryService/StreamEndpoints", method: "StreamEndpoints", kinds: ["endpoint"] },
  { path: "/envoy.service.listener.v3.ListenerDiscoveryService/StreamListeners", method: "StreamListeners", kinds: ["listener"] },
  { path: "/envoy.service.route.v3.RouteDiscoveryService/StreamRoutes", method: "StreamRoutes", kinds: ["route"] },
];

export interface XdsServerOptions {
  readonly cache: ResourceCache;
  readonly metrics: XdsMetrics;
  readonly logger: Logger;
  /** Streams refreshed per event-loop turn during a push. */
  readonly pushBatchSize?: number;
}

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
  private readonly streams = new Set<SotwStream>();
  private nextStreamId = 1;

  constructor(private readonly options: XdsServerOptions) {
    this.scheduler = new PushScheduler(options.pushBatchSize ?? 200, (seconds) => options.metrics.pushDuration.observe(seconds));
    options.cache.onChange(() => this.scheduler.schedule(this.streams));
    for (const service of SOTW_SERVICES) {
      this.server.addService(
        { [service.method]: bidi(service.path) } as grpc.ServiceDefinition,
        { [service.method]: (call: RawDuplex) => this.serveSotw(call, service.kinds) },
      );
    }
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

  private serveSotw(call: RawDuplex, kinds: readonly ResourceKind[]): void {
    const { cache, metrics, logger } = this.options;
    let stream: SotwStream | null = null;
    let closed = false;
    const fail = (code: grpc.status, details: string, reason: string): void => {
      metrics.badRequests.inc({ reason });
      logger.warn({ peer: call.getPeer(), proxy: stream?.proxy.id, reason, details }, "closing xDS stream");
      call.emit("error", { code, details });
    };
    const cleanup = (): void => {
      if (closed || !stream) return;
      closed = true;
      this.streams.delete(stream);
      this.scheduler.forget(stream);
      this.directory.remove(stream.status.streamId);
      metrics.connectedProxies.dec({ kind: stream.proxy.kind, protocol: "sotw" });
      logger.info({ proxy: stream.proxy.id }, "xDS stream closed");
    };
    call.on("data", (bytes: Buffer) => {
      let request: DiscoveryRequest;
      try {
        request = fromBinary(DiscoveryRequestSchema, bytes);
      } catch (error) {
        fail(grpc.status.INVALID_ARGUMENT, `malformed DiscoveryRequest: ${(error as Error).message}`, "malformed");
        return;
      }
      if (!stream) {
        const proxy = parseProxy(request.node);
        const status = {
          streamId: this.nextStreamId++,
          proxy,
          protocol: "sotw" as const,
          connectedAt: new Date().toISOString(),
          types: {},
        };
        stream = new SotwStream(
          status,
          cache,
          { write: (b) => call.write(b), onDrain: (callback) => call.once("drain", callback) },
          metrics,
          logger,
          kinds,
        );
        this.streams.add(stream);
        this.directory.add(status);
        metrics.connectedProxies.inc({ kind: proxy.kind, protocol: "sotw" });
        logger.info({ proxy: proxy.id, service: proxy.service, kind: proxy.kind, agent: proxy.userAgent }, "xDS stream opened");
      }
      try {
        stream.handleRequest(request);
      } catch (error) {
        if (error instanceof UnsupportedTypeError) fail(grpc.status.INVALID_ARGUMENT, error.message, "unsupported_type");
        else {
          logger.error({ err: error, proxy: stream.proxy.id }, "failed to serve xDS request");
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
