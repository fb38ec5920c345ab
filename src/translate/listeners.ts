import { create } from "@bufbuild/protobuf";
import { ListenerSchema, type Listener } from "../gen/envoy/config/listener/v3/listener_pb.ts";
import {
  HttpConnectionManager_CodecType,
  HttpConnectionManagerSchema,
  type HttpConnectionManager,
} from "../gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.ts";
import { RouterSchema } from "../gen/envoy/extensions/filters/http/router/v3/router_pb.ts";
import { adsConfigSource, pack, socketAddress } from "./common.ts";
import { apiListener, inboundListener, OUTBOUND_HTTP } from "./naming.ts";

const HCM_FILTER = "envoy.filters.network.http_connection_manager";
const ROUTER_FILTER = "envoy.filters.http.router";

/** An HTTP connection manager that fetches its routes over ADS and ends in the router filter. */
function httpConnectionManager(statPrefix: string, routeConfigName: string): HttpConnectionManager {
  return create(HttpConnectionManagerSchema, {
    statPrefix,
    codecType: HttpConnectionManager_CodecType.AUTO,
    routeSpecifier: { case: "rds", value: { configSource: adsConfigSource(), routeConfigName } },
    httpFilters: [
      { name: ROUTER_FILTER, configType: { case: "typedConfig", value: pack(RouterSchema, create(RouterSchema)) } },
    ],
  });
}

function httpListener(name: string, bindAddress: string, port: number, statPrefix: string, routeConfigName: string): Listener {
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
              value: pack(HttpConnectionManagerSchema, httpConnectionManager(statPrefix, routeConfigName)),
            },
          },
        ],
      },
    ],
  });
}

/** Sidecar inbound: the instance's mesh port, open to the network, forwarding to the app. */
export function sidecarInboundListener(port: number, routeConfigName: string): Listener {
  return httpListener(inboundListener(port), "0.0.0.0", port, `inbound_${port}`, routeConfigName);
}

/** Sidecar outbound: the app sends plain HTTP here, on loopback only. */
export function sidecarOutboundListener(port: number): Listener {
  return httpListener(OUTBOUND_HTTP, "127.0.0.1", port, "outbound_http", OUTBOUND_HTTP);
}

/** Proxyless gRPC: `xds:///<service>` resolves to this listener. */
export function proxylessApiListener(service: string, routeConfigName: string): Listener {
  return create(ListenerSchema, {
    name: apiListener(service),
    apiListener: {
      apiListener: pack(HttpConnectionManagerSchema, httpConnectionManager(service, routeConfigName)),
    },
  });
}
