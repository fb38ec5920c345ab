import { create } from "./create.ts";
import type { Any } from "@bufbuild/protobuf/wkt";
import { ListenerSchema, type Listener } from "../gen/envoy/config/listener/v3/listener_pb.ts";
import {
  HttpConnectionManager_CodecType,
  HttpConnectionManagerSchema,
  HttpFilterSchema,
  type HttpConnectionManager,
  type HttpFilter,
} from "../gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.ts";
import { RouterSchema } from "../gen/envoy/extensions/filters/http/router/v3/router_pb.ts";
import { HTTPFaultSchema } from "../gen/envoy/extensions/filters/http/fault/v3/fault_pb.ts";
import { LocalRateLimitSchema } from "../gen/envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit_pb.ts";
import { adsConfigSource, pack, socketAddress } from "./common.ts";
import { apiListener, HTTP_FILTER, inboundListener, OUTBOUND_HTTP, RATE_LIMIT_STAT_PREFIX } from "./naming.ts";

const HCM_FILTER = "envoy.filters.network.http_connection_manager";

/** Which HTTP filters an HTTP connection manager runs before its router. */
export interface HttpFilterOptions {
  /**
   * The kill switch and fault injection, on the caller's side (sidecar outbound,
   * proxyless gRPC). Empty here; routes switch them on in typed_per_filter_config.
   */
  readonly faults: boolean;
  /** Local rate limiting, off here and switched on per route. Envoy only: gRPC clients lack the filter. */
  readonly rateLimit: boolean;
  /**
   * The router takes its timeout from x-envoy-expected-rq-timeout-ms, which the
   * caller's sidecar sets to the time it has left (the inbound side of timeout
   * propagation, see mesh.timeout_policies.propagate).
   */
  readonly respectExpectedRqTimeout: boolean;
}

/**
 * The filter chain: drop, rate limit, fault, router. The kill switch comes first
 * so a dropped request costs nothing else; rate limiting comes before fault
 * injection because faults stand in for the upstream, which is behind the limit.
 */
function httpFilters(options: HttpFilterOptions): HttpFilter[] {
  const filters: HttpFilter[] = [];
  const typed = (name: string, value: Any): HttpFilter =>
    create(HttpFilterSchema, { name, configType: { case: "typedConfig", value } });
  if (options.faults) filters.push(typed(HTTP_FILTER.drop, pack(HTTPFaultSchema, create(HTTPFaultSchema))));
  if (options.rateLimit) {
    filters.push(
      typed(HTTP_FILTER.rateLimit, pack(LocalRateLimitSchema, create(LocalRateLimitSchema, { statPrefix: RATE_LIMIT_STAT_PREFIX }))),
    );
  }
  if (options.faults) filters.push(typed(HTTP_FILTER.fault, pack(HTTPFaultSchema, create(HTTPFaultSchema))));
  const router = create(RouterSchema, { respectExpectedRqTimeout: options.respectExpectedRqTimeout });
  filters.push(typed(HTTP_FILTER.router, pack(RouterSchema, router)));
  return filters;
}

/** An HTTP connection manager that fetches its routes over ADS and ends in the router filter. */
function httpConnectionManager(statPrefix: string, routeConfigName: string, filters: HttpFilterOptions): HttpConnectionManager {
  return create(HttpConnectionManagerSchema, {
    statPrefix,
    codecType: HttpConnectionManager_CodecType.AUTO,
    routeSpecifier: { case: "rds", value: { configSource: adsConfigSource(), routeConfigName } },
    httpFilters: httpFilters(filters),
  });
}

function httpListener(
  name: string,
  bindAddress: string,
  port: number,
  statPrefix: string,
  routeConfigName: string,
  filters: HttpFilterOptions,
): Listener {
  return create(ListenerSchema, {
    name,
    address: socketAddress(bindAddress, port),
    filterChains: [
      {
        filters: [
          {
            name: HCM_FILTER,
            configType: {
              case: "typedConfig",
              value: pack(HttpConnectionManagerSchema, httpConnectionManager(statPrefix, routeConfigName, filters)),
            },
          },
        ],
      },
    ],
  });
}

export interface InboundListenerOptions {
  /** See HttpFilterOptions.respectExpectedRqTimeout. */
  readonly respectExpectedRqTimeout?: boolean;
}

/**
 * Sidecar inbound: the instance's mesh port, open to the network, forwarding to
 * the app. It enforces the destination-wide rate limit of its service.
 */
export function sidecarInboundListener(port: number, routeConfigName: string, options: InboundListenerOptions = {}): Listener {
  return httpListener(inboundListener(port), "0.0.0.0", port, `inbound_${port}`, routeConfigName, {
    faults: false,
    rateLimit: true,
    respectExpectedRqTimeout: options.respectExpectedRqTimeout ?? false,
  });
}

/** Sidecar outbound: the app sends plain HTTP here, on loopback only. */
export function sidecarOutboundListener(port: number): Listener {
  return httpListener(OUTBOUND_HTTP, "127.0.0.1", port, "outbound_http", OUTBOUND_HTTP, {
    faults: true,
    rateLimit: true,
    respectExpectedRqTimeout: false,
  });
}

/** Proxyless gRPC: `xds:///<service>` resolves to this listener. */
export function proxylessApiListener(service: string, routeConfigName: string): Listener {
  return create(ListenerSchema, {
    name: apiListener(service),
    apiListener: {
      apiListener: pack(
        HttpConnectionManagerSchema,
        httpConnectionManager(service, routeConfigName, { faults: true, rateLimit: false, respectExpectedRqTimeout: false }),
      ),
    },
  });
}
