import { METADATA } from "../xds/node.ts";

/**
 * Bootstrap files for the two kinds of client. Pure: options in, JSON out.
 * The node cluster is the service name: that is how Signalbox knows which
 * service a proxy belongs to.
 */
export interface BootstrapOptions {
  readonly service: string;
  readonly nodeId: string;
  /** host:port of Signalbox's xDS server. */
  readonly xdsAddress: string;
  readonly inboundPort?: number;
  readonly appPort?: number;
  readonly outboundPort?: number;
  /** Envoy's own admin port (on loopback). */
  readonly envoyAdminPort?: number;
}

export function splitHostPort(address: string): { host: string; port: number } {
  const match = /^\[?([^\]]+?)\]?:(\d+)$/.exec(address);
  const port = Number(match?.[2]);
  if (!match?.[1] || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`--xds-address must be host:port, got ${JSON.stringify(address)}`);
  }
  return { host: match[1], port };
}

function nodeMetadata(options: BootstrapOptions): Record<string, string> {
  const metadata: Record<string, string> = {};
  if (options.inboundPort !== undefined) metadata[METADATA.inboundPort] = String(options.inboundPort);
  if (options.appPort !== undefined) metadata[METADATA.appPort] = String(options.appPort);
  if (options.outboundPort !== undefined) metadata[METADATA.outboundPort] = String(options.outboundPort);
  return metadata;
}

export function envoyBootstrap(options: BootstrapOptions): Record<string, unknown> {
  const { host, port } = splitHostPort(options.xdsAddress);
  const ads = { ads: {}, resource_api_version: "V3" };
  return {
    node: { id: options.nodeId, cluster: options.service, metadata: nodeMetadata(options) },
    dynamic_resources: {
      ads_config: {
        api_type: "GRPC",
        transport_api_version: "V3",
        grpc_services: [{ envoy_grpc: { cluster_name: "signalbox_xds" } }],
        set_node_on_first_message_only: true,
      },
      cds_config: ads,
      lds_config: ads,
    },
    static_resources: {
      clusters: [
        {
          name: "signalbox_xds",
          type: "STRICT_DNS",
          connect_timeout: "1s",
          load_assignment: {
            cluster_name: "signalbox_xds",
            endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: host, port_value: port } } } }] }],
          },
          typed_extension_protocol_options: {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
              "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
              explicit_http_config: { http2_protocol_options: {} },
            },
          },
        },
      ],
    },
    admin: { address: { socket_address: { address: "127.0.0.1", port_value: options.envoyAdminPort ?? 9901 } } },
  };
}

/** The bootstrap gRPC's xDS client reads from GRPC_XDS_BOOTSTRAP / GRPC_XDS_BOOTSTRAP_CONFIG. */
export function grpcBootstrap(options: BootstrapOptions): Record<string, unknown> {
  splitHostPort(options.xdsAddress);
  return {
    // ignore_resource_deletion (gRFC A53): a client keeps using a listener or
    // cluster that briefly disappears from a response instead of failing RPCs.
    xds_servers: [
      {
        server_uri: options.xdsAddress,
        channel_creds: [{ type: "insecure" }],
        server_features: ["xds_v3", "ignore_resource_deletion"],
      },
    ],
    node: { id: options.nodeId, cluster: options.service, metadata: nodeMetadata(options), locality: {} },
  };
}
