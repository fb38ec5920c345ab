import type { JsonObject } from "@bufbuild/protobuf";
import type { Node } from "../gen/envoy/config/core/v3/base_pb.ts";
import { DEFAULT_OUTBOUND_PORT, type Proxy } from "../model/proxy.ts";
import { clusterDialect } from "../translate/clusters.ts";

/**
 * Node metadata keys written by `signalbox bootstrap`. Ports are metadata rather
 * than registry lookups so a sidecar can start before its instance is registered.
 */
export const METADATA = {
  inboundPort: "SIGNALBOX_INBOUND_PORT",
  appPort: "SIGNALBOX_APP_PORT",
  outboundPort: "SIGNALBOX_OUTBOUND_PORT",
} as const;

function port(metadata: JsonObject | undefined, key: string): number | null {
  const raw = metadata?.[key];
  const value = typeof raw === "number" ? raw : typeof raw === "string" && raw.trim() !== "" ? Number(raw) : NaN;
  return Number.isInteger(value) && value >= 1 && value <= 65535 ? value : null;
}

/** Envoy identifies itself with user_agent_name "envoy"; everything else is a proxyless gRPC client. */
export function parseProxy(node: Node | undefined): Proxy {
  const metadata = node?.metadata;
  const userAgent = node?.userAgentName ?? "";
  return {
    id: node?.id || "(no node id)",
    service: node?.cluster ?? "",
    kind: userAgent === "envoy" ? "envoy" : "grpc",
    inboundPort: port(metadata, METADATA.inboundPort),
    appPort: port(metadata, METADATA.appPort),
    outboundPort: port(metadata, METADATA.outboundPort) ?? DEFAULT_OUTBOUND_PORT,
    userAgent: [userAgent, node?.userAgentVersionType.case === "userAgentVersion" ? node.userAgentVersionType.value : ""]
      .filter(Boolean)
      .join("/"),
  };
}

/** Proxies with the same view key receive identical resources, so they share one translation. */
export function viewKey(proxy: Proxy): string {
  // The cluster dialect tells apart gRPC clients that get different clusters (see clusters.ts).
  return [clusterDialect(proxy), proxy.service, proxy.inboundPort ?? "", proxy.appPort ?? "", proxy.outboundPort].join("|");
}
