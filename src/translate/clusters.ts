import type { MessageInitShape } from "@bufbuild/protobuf";
import { create } from "./create.ts";
import type { Any } from "@bufbuild/protobuf/wkt";
import { CircuitBreakersSchema, type CircuitBreakers } from "../gen/envoy/config/cluster/v3/circuit_breaker_pb.ts";
import {
  Cluster_DiscoveryType,
  Cluster_LbPolicy,
  Cluster_RingHashLbConfig_HashFunction,
  ClusterSchema,
  type Cluster,
} from "../gen/envoy/config/cluster/v3/cluster_pb.ts";
import {
  OutlierDetectionSchema,
  type OutlierDetection as EnvoyOutlierDetection,
} from "../gen/envoy/config/cluster/v3/outlier_detection_pb.ts";
import { RoutingPriority } from "../gen/envoy/config/core/v3/base_pb.ts";
import { HealthCheckSchema, type HealthCheck as EnvoyHealthCheck } from "../gen/envoy/config/core/v3/health_check_pb.ts";
import { HttpProtocolOptionsSchema } from "../gen/envoy/extensions/upstreams/http/v3/http_protocol_options_pb.ts";
import { CodecClientType } from "../gen/envoy/type/v3/http_pb.ts";
import {
  noServiceClusterPolicy,
  type CircuitBreaker,
  type ConnectionPolicy,
  type HealthCheck,
  type LoadBalancing,
  type OutlierDetection,
  type ServiceClusterPolicy,
  type SlowStart,
} from "../model/cluster-policies.ts";
import type { Proxy } from "../model/proxy.ts";
import type { Service, ServiceProtocol } from "../model/registry.ts";
import { adsConfigSource, millis, pack, socketAddress } from "./common.ts";
import { colorCluster, inboundCluster, outboundCluster } from "./naming.ts";

/**
 * Clusters: one per upstream service, one per subset, and for color routing one
 * per color (and subset). Their settings come from the cluster-side policies in
 * force for the service (mesh.load_balancing, connection_policies,
 * circuit_breakers, outlier_detection, health_checks; docs/rules-cluster.md).
 */

const CONNECT_TIMEOUT_MS = 5_000;
const HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/**
 * What a proxy understands of a cluster.
 *
 * - envoy: everything.
 * - grpc: proxyless gRPC implements round_robin and ring_hash only and NACKs the
 *   other algorithms (LEAST_REQUEST, RANDOM, MAGLEV: "unsupported lb_policy" in
 *   grpc-js-xds 1.14, "LB policy is not supported" in C-core 1.51). So
 *   least_request and random become round_robin, and maglev (another
 *   consistent hash) becomes ring_hash. Slow start, locality weighting, the
 *   panic threshold and active health checks are Envoy's: gRPC ignores them
 *   (it always weighs localities), so they are left out.
 * - grpc-no-ring-hash: gRPC C-core 1.50 and 1.51 crash (SIGSEGV) on their first
 *   pick through a RING_HASH cluster (grpc/grpc#31766, fixed in 1.52), so they
 *   get round_robin for every algorithm.
 */
export type ClusterDialect = "envoy" | "grpc" | "grpc-no-ring-hash";

/** C-core's user agent reads "gRPC C-core <platform>/C-core 29.0.0 <language> 1.51.1": core 28.x is gRPC 1.50, 29.x is 1.51. */
const RING_HASH_CRASHES = /(^|\/)C-core (28|29)\./;

export function clusterDialect(proxy: Pick<Proxy, "kind" | "userAgent">): ClusterDialect {
  if (proxy.kind === "envoy") return "envoy";
  return RING_HASH_CRASHES.test(proxy.userAgent) ? "grpc-no-ring-hash" : "grpc";
}

/** Upstream HTTP options: the protocol (HTTP/2 for http2 and grpc services) and connection limits. */
function protocolOptions(protocol: ServiceProtocol, connection: ConnectionPolicy | null): Record<string, Any> {
  if (protocol === "tcp") return {};
  const h2 = protocol === "grpc" || protocol === "http2";
  const idle = connection?.idleTimeoutMs ?? null;
  const maxRequests = connection?.maxRequestsPerConnection ?? null;
  const streams = h2 ? (connection?.http2MaxConcurrentStreams ?? null) : null;
  if (!h2 && idle === null && maxRequests === null) return {};
  const options = create(HttpProtocolOptionsSchema, {
    upstreamProtocolOptions: {
      case: "explicitHttpConfig",
      value: {
        protocolConfig: h2
          ? { case: "http2ProtocolOptions", value: streams === null ? {} : { maxConcurrentStreams: streams } }
          : { case: "httpProtocolOptions", value: {} },
      },
    },
    ...(idle !== null || maxRequests !== null
      ? {
          commonHttpProtocolOptions: {
            ...(idle !== null ? { idleTimeout: millis(idle) } : {}),
            ...(maxRequests !== null ? { maxRequestsPerConnection: maxRequests } : {}),
          },
        }
      : {}),
  });
  return { [HTTP_PROTOCOL_OPTIONS]: pack(HttpProtocolOptionsSchema, options) };
}

/** The Envoy algorithm a dialect gets for an algorithm of mesh.load_balancing. */
function lbPolicy(algorithm: LoadBalancing["algorithm"], dialect: ClusterDialect): Cluster_LbPolicy {
  if (dialect === "grpc-no-ring-hash") return Cluster_LbPolicy.ROUND_ROBIN;
  if (dialect === "grpc") return algorithm === "ring_hash" || algorithm === "maglev" ? Cluster_LbPolicy.RING_HASH : Cluster_LbPolicy.ROUND_ROBIN;
  switch (algorithm) {
    case "round_robin":
      return Cluster_LbPolicy.ROUND_ROBIN;
    case "least_request":
      return Cluster_LbPolicy.LEAST_REQUEST;
    case "random":
      return Cluster_LbPolicy.RANDOM;
    case "ring_hash":
      return Cluster_LbPolicy.RING_HASH;
    case "maglev":
      return Cluster_LbPolicy.MAGLEV;
  }
}

function slowStartConfig(service: string, slowStart: SlowStart) {
  return {
    slowStartWindow: millis(slowStart.windowMs),
    ...(slowStart.aggression !== null
      ? { aggression: { defaultValue: slowStart.aggression, runtimeKey: `signalbox.${service}.slow_start_aggression` } }
      : {}),
    ...(slowStart.minWeightPercent !== null ? { minWeightPercent: { value: slowStart.minWeightPercent } } : {}),
  };
}

/** lb_policy, the algorithm's lb_config, and common_lb_config. */
type ClusterInit = MessageInitShape<typeof ClusterSchema>;

function loadBalancingFields(service: string, lb: LoadBalancing | null, dialect: ClusterDialect): ClusterInit {
  const algorithm = lb?.algorithm ?? "round_robin";
  const policy = lbPolicy(algorithm, dialect);
  const fields: Record<string, unknown> = { lbPolicy: policy };
  if (!lb) return fields as ClusterInit;
  if (policy === Cluster_LbPolicy.RING_HASH) {
    // gRPC requires XX_HASH (Envoy's default); sizes only when the row sets them.
    if (algorithm === "ring_hash" && (lb.ringMinSize !== null || lb.ringMaxSize !== null)) {
      fields.lbConfig = {
        case: "ringHashLbConfig",
        value: {
          hashFunction: Cluster_RingHashLbConfig_HashFunction.XX_HASH,
          ...(lb.ringMinSize !== null ? { minimumRingSize: BigInt(lb.ringMinSize) } : {}),
          ...(lb.ringMaxSize !== null ? { maximumRingSize: BigInt(lb.ringMaxSize) } : {}),
        },
      };
    }
    return fields as ClusterInit;
  }
  if (dialect !== "envoy") return fields as ClusterInit;
  if (algorithm === "round_robin" && lb.slowStart) {
    fields.lbConfig = { case: "roundRobinLbConfig", value: { slowStartConfig: slowStartConfig(service, lb.slowStart) } };
  } else if (algorithm === "least_request" && (lb.choiceCount !== null || lb.slowStart)) {
    fields.lbConfig = {
      case: "leastRequestLbConfig",
      value: {
        ...(lb.choiceCount !== null ? { choiceCount: lb.choiceCount } : {}),
        ...(lb.slowStart ? { slowStartConfig: slowStartConfig(service, lb.slowStart) } : {}),
      },
    };
  } else if (algorithm === "maglev" && lb.maglevTableSize !== null) {
    fields.lbConfig = { case: "maglevLbConfig", value: { tableSize: BigInt(lb.maglevTableSize) } };
  }
  if (lb.localityWeighted || lb.panicThresholdPercent !== null) {
    fields.commonLbConfig = {
      ...(lb.panicThresholdPercent !== null ? { healthyPanicThreshold: { value: lb.panicThresholdPercent } } : {}),
      ...(lb.localityWeighted ? { localityConfigSpecifier: { case: "localityWeightedLbConfig", value: {} } } : {}),
    };
  }
  return fields as ClusterInit;
}

function circuitBreakers(breaker: CircuitBreaker): CircuitBreakers {
  return create(CircuitBreakersSchema, {
    thresholds: [
      {
        priority: RoutingPriority.DEFAULT,
        ...(breaker.maxConnections !== null ? { maxConnections: breaker.maxConnections } : {}),
        ...(breaker.maxPendingRequests !== null ? { maxPendingRequests: breaker.maxPendingRequests } : {}),
        ...(breaker.maxRequests !== null ? { maxRequests: breaker.maxRequests } : {}),
        ...(breaker.maxRetries !== null ? { maxRetries: breaker.maxRetries } : {}),
        ...(breaker.retryBudget
          ? {
              retryBudget: {
                budgetPercent: { value: breaker.retryBudget.percent },
                ...(breaker.retryBudget.minConcurrency !== null ? { minRetryConcurrency: breaker.retryBudget.minConcurrency } : {}),
              },
            }
          : {}),
      },
    ],
  });
}

/**
 * A detector is on exactly when its column is set. Envoy turns consecutive 5xx
 * and success-rate ejection on by default, so those are switched off
 * explicitly (enforcing 0) when their column is not set.
 */
function outlierDetection(od: OutlierDetection): EnvoyOutlierDetection {
  return create(OutlierDetectionSchema, {
    interval: millis(od.intervalMs),
    baseEjectionTime: millis(od.baseEjectionTimeMs),
    ...(od.maxEjectionTimeMs !== null ? { maxEjectionTime: millis(od.maxEjectionTimeMs) } : {}),
    maxEjectionPercent: od.maxEjectionPercent,
    ...(od.consecutive5xx !== null
      ? { consecutive5xx: od.consecutive5xx, enforcingConsecutive5xx: 100 }
      : { enforcingConsecutive5xx: 0 }),
    ...(od.consecutiveGatewayErrors !== null
      ? { consecutiveGatewayFailure: od.consecutiveGatewayErrors, enforcingConsecutiveGatewayFailure: 100 }
      : {}),
    ...(od.successRateStdevFactor !== null
      ? {
          enforcingSuccessRate: 100,
          successRateStdevFactor: Math.round(od.successRateStdevFactor * 1000),
          ...(od.successRateMinimumHosts !== null ? { successRateMinimumHosts: od.successRateMinimumHosts } : {}),
          ...(od.successRateRequestVolume !== null ? { successRateRequestVolume: od.successRateRequestVolume } : {}),
        }
      : { enforcingSuccessRate: 0 }),
    ...(od.failurePercentageThreshold !== null
      ? {
          failurePercentageThreshold: od.failurePercentageThreshold,
          enforcingFailurePercentage: 100,
          ...(od.failurePercentageMinimumHosts !== null ? { failurePercentageMinimumHosts: od.failurePercentageMinimumHosts } : {}),
          ...(od.failurePercentageRequestVolume !== null ? { failurePercentageRequestVolume: od.failurePercentageRequestVolume } : {}),
        }
      : {}),
  });
}

/** Consecutive status codes as Envoy's half-open ranges: [200, 204] -> [200, 201), [204, 205). */
function statusRanges(codes: readonly number[]): { start: bigint; end: bigint }[] {
  const sorted = [...new Set(codes)].sort((a, b) => a - b);
  const ranges: { start: bigint; end: bigint }[] = [];
  for (const code of sorted) {
    const last = ranges[ranges.length - 1];
    if (last && last.end === BigInt(code)) last.end = BigInt(code + 1);
    else ranges.push({ start: BigInt(code), end: BigInt(code + 1) });
  }
  return ranges;
}

function healthCheck(check: HealthCheck, protocol: ServiceProtocol): EnvoyHealthCheck {
  const h2 = protocol === "grpc" || protocol === "http2";
  const common = {
    timeout: millis(check.timeoutMs),
    interval: millis(check.intervalMs),
    unhealthyThreshold: check.unhealthyThreshold,
    healthyThreshold: check.healthyThreshold,
  };
  switch (check.protocol) {
    case "http":
      return create(HealthCheckSchema, {
        ...common,
        healthChecker: {
          case: "httpHealthCheck",
          value: {
            path: check.path ?? "/",
            ...(check.host !== null ? { host: check.host } : {}),
            ...(check.expectedStatuses.length > 0 ? { expectedStatuses: statusRanges(check.expectedStatuses) } : {}),
            ...(h2 ? { codecClientType: CodecClientType.HTTP2 } : {}),
          },
        },
      });
    case "tcp":
      return create(HealthCheckSchema, {
        ...common,
        healthChecker: {
          case: "tcpHealthCheck",
          value: {
            ...(check.sendHex !== null ? { send: { payload: { case: "text", value: check.sendHex } } } : {}),
            ...(check.receiveHex !== null ? { receive: [{ payload: { case: "text", value: check.receiveHex } }] } : {}),
          },
        },
      });
    case "grpc":
      return create(HealthCheckSchema, {
        ...common,
        healthChecker: { case: "grpcHealthCheck", value: check.grpcServiceName !== null ? { serviceName: check.grpcServiceName } : {} },
      });
  }
}

/** Options for one cluster: what the service's policies say, and for whom. */
export interface ClusterOptions {
  readonly policy?: ServiceClusterPolicy;
  readonly dialect?: ClusterDialect;
}

/**
 * An EDS cluster: the whole service (subset null), one subset, or with `color`
 * the cluster for requests of that color (its endpoints fall back from the
 * colored instances to the baseline ones, see endpoints.ts).
 */
export function outboundEdsCluster(
  service: Service,
  subset: string | null,
  options: ClusterOptions = {},
  color: string | null = null,
): Cluster {
  const policy = options.policy ?? noServiceClusterPolicy;
  const dialect = options.dialect ?? "envoy";
  const name = color === null ? outboundCluster(service.name, subset) : colorCluster(service.name, subset, color);
  const cluster = create(ClusterSchema, {
    name,
    clusterDiscoveryType: { case: "type", value: Cluster_DiscoveryType.EDS },
    edsClusterConfig: { edsConfig: adsConfigSource(), serviceName: name },
    connectTimeout: millis(policy.connection?.connectTimeoutMs ?? CONNECT_TIMEOUT_MS),
    typedExtensionProtocolOptions: protocolOptions(service.protocol, policy.connection),
    // lb_policy, lb_config, common_lb_config (no overlap with the fields above).
    ...(loadBalancingFields(service.name, policy.loadBalancing, dialect) as object),
  });
  if (policy.circuitBreaker) cluster.circuitBreakers = circuitBreakers(policy.circuitBreaker);
  if (policy.outlierDetection) cluster.outlierDetection = outlierDetection(policy.outlierDetection);
  if (dialect === "envoy" && policy.healthChecks.length > 0) {
    cluster.healthChecks = policy.healthChecks.map((check) => healthCheck(check, service.protocol));
  }
  return cluster;
}

/** The local application behind a sidecar, reached on loopback; depends only on the port and the service's protocol. */
export function inboundAppCluster(service: Pick<Service, "protocol">, appPort: number): Cluster {
  const name = inboundCluster(appPort);
  return create(ClusterSchema, {
    name,
    clusterDiscoveryType: { case: "type", value: Cluster_DiscoveryType.STATIC },
    connectTimeout: millis(CONNECT_TIMEOUT_MS),
    lbPolicy: Cluster_LbPolicy.ROUND_ROBIN,
    loadAssignment: {
      clusterName: name,
      endpoints: [
        { lbEndpoints: [{ hostIdentifier: { case: "endpoint", value: { address: socketAddress("127.0.0.1", appPort) } } }] },
      ],
    },
    typedExtensionProtocolOptions: protocolOptions(service.protocol, null),
  });
}

/**
 * Every outbound cluster of `service`: the whole service, each accepted subset,
 * and with color routing one per color for the whole service and each subset.
 */
export function serviceClusterSet(
  service: Service,
  subsets: readonly string[],
  policy: ServiceClusterPolicy,
  colors: readonly string[],
  dialect: ClusterDialect,
): Map<string, Cluster> {
  const clusters = new Map<string, Cluster>();
  const whole = outboundEdsCluster(service, null, { policy, dialect });
  clusters.set(whole.name, whole);
  // The others differ from the whole-service cluster only in their names: shallow
  // copies sharing every other field (translated messages are never mutated).
  const eds = whole.edsClusterConfig;
  if (!eds) throw new Error("an outbound cluster without EDS config");
  const add = (name: string): void => void clusters.set(name, { ...whole, name, edsClusterConfig: { ...eds, serviceName: name } });
  for (const subset of subsets) add(outboundCluster(service.name, subset));
  for (const color of colors) {
    add(colorCluster(service.name, null, color));
    for (const subset of subsets) add(colorCluster(service.name, subset, color));
  }
  return clusters;
}
