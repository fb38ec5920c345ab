import { create } from "@bufbuild/protobuf";
import { HttpProtocolOptionsSchema } from "../gen/envoy/extensions/upstreams/http/v3/http_protocol_options_pb.ts";
import { Cluster_DiscoveryType, Cluster_LbPolicy, ClusterSchema, type Cluster } from "../gen/envoy/config/cluster/v3/cluster_pb.ts";
import type { Any } from "@bufbuild/protobuf/wkt";
import type { Service, ServiceProtocol } from "../model/registry.ts";
import { adsConfigSource, millis, pack, socketAddress } from "./common.ts";
import { inboundCluster, outboundCluster } from "./naming.ts";

const CONNECT_TIMEOUT_MS = 5_000;
const HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/** gRPC and HTTP/2 upstreams must be spoken to in HTTP/2; Envoy defaults to HTTP/1.1. */
function protocolOptions(protocol: ServiceProtocol): Record<string, Any> {
  if (protocol !== "grpc" && protocol !== "http2") return {};
  const options = create(HttpProtocolOptionsSchema, {
    upstreamProtocolOptions: {
      case: "explicitHttpConfig",
      value: { protocolConfig: { case: "http2ProtocolOptions", value: {} } },
    },
  });
  return { [HTTP_PROTOCOL_OPTIONS]: pack(HttpProtocolOptionsSchema, options) };
}

/** An EDS cluster for a whole service, or for one subset of it. */
export function outboundEdsCluster(service: Service, subset: string | null): Cluster {
  const name = outboundCluster(service.name, subset);
  return create(ClusterSchema, {
    name,
    clusterDiscoveryType: { case: "type", value: Cluster_DiscoveryType.EDS },
    edsClusterConfig: { edsConfig: adsConfigSource(), serviceName: name },
    connectTimeout: millis(CONNECT_TIMEOUT_MS),
    lbPolicy: Cluster_LbPolicy.ROUND_ROBIN,
    typedExtensionProtocolOptions: protocolOptions(service.protocol),
  });
}

/** The local application behind a sidecar, reached on loopback. */
export function inboundAppCluster(service: Service, appPort: number): Cluster {
  const name = inboundCluster(service.name);
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
    typedExtensionProtocolOptions: protocolOptions(service.protocol),
  });
}
