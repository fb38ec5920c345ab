// A small, scripted State-of-the-World ADS server for client-harness tests.
//
// It serves whatever resources the test gives it (as packed Any messages), answers
// each DiscoveryRequest whose subscription changed, pushes when the test calls
// set(), ignores ACKs, records every request (ACK/NACK/stale) for assertions, and
// never re-sends content a client NACKed unless the test changes it. It also ships
// builders for the minimal proxyless-gRPC resource set (LDS api_listener -> RDS ->
// CDS EDS -> EDS) so a test can stand up `xds:///name` in a few lines.
//
// It is deliberately not the product's server: it is a peer for testing the
// clients (and later, for conformance tests that script exact server behaviour).
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { anyPack, type Any } from "@bufbuild/protobuf/wkt";
import {
  DiscoveryRequestSchema,
  DiscoveryResponseSchema,
  type DiscoveryRequest,
  type DiscoveryResponse,
} from "../../../src/gen/envoy/service/discovery/v3/discovery_pb.ts";
import type { Node } from "../../../src/gen/envoy/config/core/v3/base_pb.ts";
import { ListenerSchema } from "../../../src/gen/envoy/config/listener/v3/listener_pb.ts";
import {
  HttpConnectionManagerSchema,
  HttpFilterSchema,
  type HttpConnectionManager,
  type HttpFilter,
} from "../../../src/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.ts";
import { RouterSchema } from "../../../src/gen/envoy/extensions/filters/http/router/v3/router_pb.ts";
import { RouteConfigurationSchema, type RouteConfiguration } from "../../../src/gen/envoy/config/route/v3/route_pb.ts";
import { ClusterSchema, Cluster_DiscoveryType, Cluster_LbPolicy } from "../../../src/gen/envoy/config/cluster/v3/cluster_pb.ts";
import { ClusterLoadAssignmentSchema } from "../../../src/gen/envoy/config/endpoint/v3/endpoint_pb.ts";
import { ApiVersion } from "../../../src/gen/envoy/config/core/v3/config_source_pb.ts";
import { HealthStatus } from "../../../src/gen/envoy/config/core/v3/health_check_pb.ts";

export const TYPE = {
  listener: "type.googleapis.com/envoy.config.listener.v3.Listener",
  route: "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
  cluster: "type.googleapis.com/envoy.config.cluster.v3.Cluster",
  endpoint: "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
} as const;

/** Order used by setAll(): make before break (clusters, endpoints, listeners, routes). */
const PUSH_ORDER = [TYPE.cluster, TYPE.endpoint, TYPE.listener, TYPE.route];
/** Types where an empty resource_names list means "all" (wildcard). */
const WILDCARD_TYPES = new Set<string>([TYPE.listener, TYPE.cluster]);

export interface AdsResource {
  name: string;
  resource: Any;
}

/** Resources by type URL. */
export type ResourceMap = Partial<Record<string, AdsResource[]>>;

export function packed<Desc extends DescMessage>(name: string, schema: Desc, message: MessageShape<Desc>): AdsResource {
  return { name, resource: anyPack(schema, message) };
}

export interface RecordedRequest {
  /** 1-based stream number on this server. */
  stream: number;
  /** Node from the stream's first request. */
  nodeId: string;
  typeUrl: string;
  versionInfo: string;
  responseNonce: string;
  resourceNames: string[];
  /** "initial" (no response nonce: first request, or after a reconnect), "ack", "nack", or "stale" (an old nonce, ignored). */
  kind: "initial" | "ack" | "nack" | "stale";
  /** The resource names differ from the stream's previous request of this type. */
  subscriptionChanged: boolean;
  errorDetail?: string;
  at: number;
}

export interface SentResponse {
  stream: number;
  nodeId: string;
  typeUrl: string;
  versionInfo: string;
  nonce: string;
  names: string[];
  at: number;
}

export interface StaticAds {
  readonly port: number;
  /** "127.0.0.1:port", for makeBootstrap({ serverUri }). */
  readonly address: string;
  /** Replace all resources of one type, bump its version, push to subscribed streams. */
  set(typeUrl: string, resources: AdsResource[]): void;
  /** set() each type present in the map, in make-before-break order. */
  setAll(resources: ResourceMap): void;
  /** The current version string of a type ("0" before any set()). */
  version(typeUrl: string): string;
  readonly requests: readonly RecordedRequest[];
  readonly responses: readonly SentResponse[];
  /** Streams currently open. */
  readonly openStreams: number;
  /** NACKs received so far (optionally of one type). */
  nacks(typeUrl?: string): RecordedRequest[];
  /** Resolve with the first recorded request (past or future) that matches. */
  waitForRequest(pred: (r: RecordedRequest) => boolean, timeoutMs?: number): Promise<RecordedRequest>;
  /** Wait until some stream ACKs `version` (default: the current version) of a type. */
  waitForAck(typeUrl: string, version?: string, timeoutMs?: number): Promise<RecordedRequest>;
  /**
   * How the client with this node id answered the response that carried `version`
   * (default: the current version) of a type: its ACK, or its NACK with errorDetail.
   */
  waitForVerdict(typeUrl: string, o: { nodeId: string; version?: string; timeoutMs?: number }): Promise<RecordedRequest>;
  stop(): Promise<void>;
}

export interface StaticAdsOptions {
  resources?: ResourceMap;
  /** Default 0 (a free port). */
  port?: number;
  /** Log requests and responses to stderr (also SIGNALBOX_ADS_LOG=1). */
  log?: boolean;
}

const ADS_PATH = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";

const adsServiceDefinition: grpc.ServiceDefinition = {
  StreamAggregatedResources: {
    path: ADS_PATH,
    requestStream: true,
    responseStream: true,
    requestSerialize: (m: DiscoveryRequest) => Buffer.from(toBinary(DiscoveryRequestSchema, m)),
    requestDeserialize: (b: Buffer) => fromBinary(DiscoveryRequestSchema, b),
    responseSerialize: (m: DiscoveryResponse) => Buffer.from(toBinary(DiscoveryResponseSchema, m)),
    responseDeserialize: (b: Buffer) => fromBinary(DiscoveryResponseSchema, b),
  },
};

interface Subscription {
  wildcard: boolean;
  names: Set<string>;
  lastNonce?: string;
}

export async function startStaticAds(opts: StaticAdsOptions = {}): Promise<StaticAds> {
  const log = opts.log ?? (process.env.SIGNALBOX_ADS_LOG !== undefined && process.env.SIGNALBOX_ADS_LOG !== "0");
  const resources = new Map<string, AdsResource[]>();
  const versions = new Map<string, number>();
  const requests: RecordedRequest[] = [];
  const responses: SentResponse[] = [];
  const waiters = new Set<{ pred: (r: RecordedRequest) => boolean; resolve: (r: RecordedRequest) => void }>();
  const streams = new Set<{ id: number; subs: Map<string, Subscription>; push: (typeUrl: string) => void }>();
  let streamCount = 0;

  const versionOf = (typeUrl: string): string => String(versions.get(typeUrl) ?? 0);

  const record = (r: RecordedRequest): void => {
    requests.push(r);
    if (log) process.stderr.write(`[static-ads] stream ${r.stream} ${r.kind}${r.subscriptionChanged ? "+subscribe" : ""} ${short(r.typeUrl)} v=${r.versionInfo} nonce=${r.responseNonce} names=${r.resourceNames.join(",")}${r.errorDetail ? ` error=${r.errorDetail}` : ""}\n`);
    for (const w of waiters) {
      if (w.pred(r)) {
        waiters.delete(w);
        w.resolve(r);
      }
    }
  };

  const handler: grpc.handleBidiStreamingCall<DiscoveryRequest, DiscoveryResponse> = (call) => {
    const id = ++streamCount;
    const subs = new Map<string, Subscription>();
    let nonceSeq = 0;
    let nodeId = "";
    let open = true;

    const push = (typeUrl: string): void => {
      const sub = subs.get(typeUrl);
      if (!open || !sub) return;
      if (!sub.wildcard && sub.names.size === 0) return;
      const all = resources.get(typeUrl) ?? [];
      const chosen = sub.wildcard ? all : all.filter((r) => sub.names.has(r.name));
      // SotW: a wildcard or LDS/CDS subscription gets the full (possibly empty) list,
      // which is how deletions are signalled; RDS/EDS get only the named resources.
      const nonce = String(++nonceSeq);
      sub.lastNonce = nonce;
      const versionInfo = versionOf(typeUrl);
      const resp = create(DiscoveryResponseSchema, {
        versionInfo,
        typeUrl,
        nonce,
        resources: chosen.map((r) => r.resource),
      });
      responses.push({ stream: id, nodeId, typeUrl, versionInfo, nonce, names: chosen.map((r) => r.name), at: Date.now() });
      if (log) process.stderr.write(`[static-ads] stream ${id} -> ${short(typeUrl)} v=${versionInfo} nonce=${nonce} [${chosen.map((r) => r.name).join(",")}]\n`);
      call.write(resp);
    };
    const stream = { id, subs, push };
    streams.add(stream);

    call.on("data", (req: DiscoveryRequest) => {
      if (req.node) nodeId ||= (req.node as Node).id;
      const typeUrl = req.typeUrl;
      const names = [...req.resourceNames];
      const base = {
        stream: id,
        nodeId,
        typeUrl,
        versionInfo: req.versionInfo,
        responseNonce: req.responseNonce,
        resourceNames: names,
        at: Date.now(),
      };
      let sub = subs.get(typeUrl);
      if (sub?.lastNonce !== undefined && req.responseNonce !== "" && req.responseNonce !== sub.lastNonce) {
        record({ ...base, kind: "stale", subscriptionChanged: false, ...(req.errorDetail ? { errorDetail: req.errorDetail.message } : {}) });
        return;
      }
      // Wildcard: an explicit "*", or an empty list on the first LDS/CDS request of the
      // stream (legacy wildcard), which stays wildcard while the list stays empty. Any
      // other empty list unsubscribes from everything of the type.
      const wildcard =
        names.includes("*") || (names.length === 0 && WILDCARD_TYPES.has(typeUrl) && (sub === undefined || sub.wildcard));
      const changed = !sub || sub.wildcard !== wildcard || sub.names.size !== names.length || names.some((n) => !sub?.names.has(n));
      let kind: RecordedRequest["kind"];
      if (req.errorDetail) kind = "nack";
      else if (!sub || req.responseNonce === "") kind = "initial";
      else kind = "ack";
      record({ ...base, kind, subscriptionChanged: changed, ...(req.errorDetail ? { errorDetail: req.errorDetail.message } : {}) });
      if (!sub) {
        sub = { wildcard, names: new Set(names) };
        subs.set(typeUrl, sub);
      } else {
        sub.wildcard = wildcard;
        sub.names = new Set(names);
      }
      // Answer new or changed subscriptions (a reconnecting client sends no nonce:
      // answer it too). ACKs and NACKs of an unchanged subscription get no reply.
      if (changed || req.responseNonce === "") push(typeUrl);
    });
    const done = (): void => {
      if (!open) return;
      open = false;
      streams.delete(stream);
    };
    call.on("end", () => {
      done();
      call.end();
    });
    call.on("error", done);
    call.on("cancelled", done);
    call.on("close", done);
  };

  const server = new grpc.Server();
  server.addService(adsServiceDefinition, { StreamAggregatedResources: handler });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${opts.port ?? 0}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );

  const set = (typeUrl: string, list: AdsResource[]): void => {
    resources.set(typeUrl, [...list]);
    versions.set(typeUrl, (versions.get(typeUrl) ?? 0) + 1);
    for (const s of streams) s.push(typeUrl);
  };
  const setAll = (map: ResourceMap): void => {
    const order = [...PUSH_ORDER, ...Object.keys(map).filter((t) => !PUSH_ORDER.includes(t as (typeof PUSH_ORDER)[number]))];
    for (const t of order) {
      const list = map[t];
      if (list) set(t, list);
    }
  };
  if (opts.resources) setAll(opts.resources);

  const waitForRequest = (pred: (r: RecordedRequest) => boolean, timeoutMs = 10_000): Promise<RecordedRequest> => {
    const found = requests.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const w = {
        pred,
        resolve: (r: RecordedRequest) => {
          clearTimeout(timer);
          resolve(r);
        },
      };
      const timer = setTimeout(() => {
        waiters.delete(w);
        reject(new Error(`static-ads: no matching DiscoveryRequest within ${timeoutMs} ms; last requests:\n${requests.slice(-10).map((r) => JSON.stringify(r)).join("\n")}`));
      }, timeoutMs);
      waiters.add(w);
    });
  };

  return {
    port,
    address: `127.0.0.1:${port}`,
    set,
    setAll,
    version: versionOf,
    requests,
    responses,
    get openStreams() {
      return streams.size;
    },
    nacks: (typeUrl) => requests.filter((r) => r.kind === "nack" && (typeUrl === undefined || r.typeUrl === typeUrl)),
    waitForRequest,
    waitForAck: (typeUrl, version, timeoutMs) => {
      const v = version ?? versionOf(typeUrl);
      return waitForRequest((r) => r.typeUrl === typeUrl && r.kind === "ack" && r.versionInfo === v, timeoutMs);
    },
    waitForVerdict: (typeUrl, o) => {
      const v = o.version ?? versionOf(typeUrl);
      return waitForRequest(
        (r) =>
          r.nodeId === o.nodeId &&
          r.typeUrl === typeUrl &&
          (r.kind === "ack" || r.kind === "nack") &&
          responses.some((s) => s.stream === r.stream && s.typeUrl === typeUrl && s.nonce === r.responseNonce && s.versionInfo === v),
        o.timeoutMs,
      );
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.forceShutdown();
        resolve();
      }),
  };
}

function short(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf(".") + 1);
}

// ---------------------------------------------------------------------------
// Builders for the minimal proxyless gRPC resource set.

/** The router filter, as gRPC clients require it (last, typed_config = Router). */
export function routerFilter(): HttpFilter {
  return create(HttpFilterSchema, {
    name: "envoy.filters.http.router",
    configType: { case: "typedConfig", value: anyPack(RouterSchema, create(RouterSchema)) },
  });
}

export interface ListenerOptions {
  /** Default: the listener name. */
  routeConfigName?: string;
  /** Default: [routerFilter()]. */
  httpFilters?: HttpFilter[];
  /** Default: the listener name. */
  statPrefix?: string;
  /** Last word on the HttpConnectionManager before it is packed. */
  customize?: (hcm: HttpConnectionManager) => void;
}

/** An API listener (what `xds:///name` resolves) whose HCM fetches its routes over ADS (RDS). */
export function apiListener(name: string, o: ListenerOptions = {}): AdsResource {
  const hcm = create(HttpConnectionManagerSchema, {
    statPrefix: o.statPrefix ?? name,
    routeSpecifier: {
      case: "rds",
      value: {
        routeConfigName: o.routeConfigName ?? name,
        configSource: { configSourceSpecifier: { case: "ads", value: {} }, resourceApiVersion: ApiVersion.V3 },
      },
    },
    httpFilters: o.httpFilters ?? [routerFilter()],
  });
  o.customize?.(hcm);
  const listener = create(ListenerSchema, { name, apiListener: { apiListener: anyPack(HttpConnectionManagerSchema, hcm) } });
  return packed(name, ListenerSchema, listener);
}

export interface WeightedTarget {
  cluster: string;
  weight: number;
}

export interface RouteOptions {
  /** Default ["*"]. */
  domains?: string[];
  /** Set WeightedCluster.total_weight (deprecated upstream; omitted by default). */
  totalWeight?: number;
  /** Last word on the RouteConfiguration before it is packed. */
  customize?: (rc: RouteConfiguration) => void;
}

/** One virtual host, one catch-all route to a cluster or a weighted split. */
export function routeConfig(name: string, to: string | WeightedTarget[], o: RouteOptions = {}): AdsResource {
  const clusterSpecifier =
    typeof to === "string"
      ? { case: "cluster" as const, value: to }
      : {
          case: "weightedClusters" as const,
          value: {
            clusters: to.map((t) => ({ name: t.cluster, weight: t.weight })),
            ...(o.totalWeight !== undefined ? { totalWeight: o.totalWeight } : {}),
          },
        };
  const rc = create(RouteConfigurationSchema, {
    name,
    virtualHosts: [
      {
        name: `${name}-vhost`,
        domains: o.domains ?? ["*"],
        routes: [{ match: { pathSpecifier: { case: "prefix", value: "" } }, action: { case: "route", value: { clusterSpecifier } } }],
      },
    ],
  });
  o.customize?.(rc);
  return packed(name, RouteConfigurationSchema, rc);
}

/** An EDS cluster whose endpoints come over ADS, round robin. */
export function edsCluster(name: string, o: { serviceName?: string; lbPolicy?: Cluster_LbPolicy } = {}): AdsResource {
  const cluster = create(ClusterSchema, {
    name,
    clusterDiscoveryType: { case: "type", value: Cluster_DiscoveryType.EDS },
    edsClusterConfig: {
      edsConfig: { configSourceSpecifier: { case: "ads", value: {} }, resourceApiVersion: ApiVersion.V3 },
      ...(o.serviceName ? { serviceName: o.serviceName } : {}),
    },
    lbPolicy: o.lbPolicy ?? Cluster_LbPolicy.ROUND_ROBIN,
  });
  return packed(name, ClusterSchema, cluster);
}

export interface EndpointSpec {
  host: string;
  port: number;
  weight?: number;
  health?: HealthStatus;
}

/** One locality (weight 1: gRPC clients ignore localities without a weight) with the endpoints. */
export function loadAssignment(clusterName: string, endpoints: EndpointSpec[], locality = { region: "test", zone: "a", subZone: "" }): AdsResource {
  const cla = create(ClusterLoadAssignmentSchema, {
    clusterName,
    endpoints: [
      {
        locality,
        loadBalancingWeight: 1,
        lbEndpoints: endpoints.map((e) => ({
          hostIdentifier: {
            case: "endpoint" as const,
            value: { address: { address: { case: "socketAddress" as const, value: { address: e.host, portSpecifier: { case: "portValue" as const, value: e.port } } } } },
          },
          healthStatus: e.health ?? HealthStatus.HEALTHY,
          ...(e.weight !== undefined ? { loadBalancingWeight: e.weight } : {}),
        })),
      },
    ],
  });
  return packed(clusterName, ClusterLoadAssignmentSchema, cla);
}

export interface ServiceSpec {
  /** The xds:/// name: listener and route configuration name. */
  service: string;
  /**
   * Clusters with their endpoints. With one cluster the route points at it; with
   * several, the route is a weighted split using each cluster's weight (default 1).
   */
  clusters: Array<{ name: string; endpoints: EndpointSpec[]; weight?: number }>;
  routeOptions?: RouteOptions;
  listenerOptions?: ListenerOptions;
}

/** LDS+RDS+CDS+EDS for one proxyless service. */
export function serviceResources(spec: ServiceSpec): ResourceMap {
  const [first] = spec.clusters;
  if (!first) throw new Error("serviceResources: at least one cluster is required");
  const to: string | WeightedTarget[] =
    spec.clusters.length === 1 ? first.name : spec.clusters.map((c) => ({ cluster: c.name, weight: c.weight ?? 1 }));
  return {
    [TYPE.cluster]: spec.clusters.map((c) => edsCluster(c.name)),
    [TYPE.endpoint]: spec.clusters.map((c) => loadAssignment(c.name, c.endpoints)),
    [TYPE.listener]: [apiListener(spec.service, spec.listenerOptions)],
    [TYPE.route]: [routeConfig(spec.service, to, spec.routeOptions)],
  };
}

/** host/port of anything with them (e.g. a Backend). */
export const endpointOf = (b: { host: string; port: number }, weight?: number): EndpointSpec => ({
  host: b.host,
  port: b.port,
  ...(weight !== undefined ? { weight } : {}),
});
