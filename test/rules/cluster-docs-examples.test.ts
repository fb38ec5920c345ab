/** Keeps docs/rules-cluster.md honest: see docs-examples.ts. */
import { proxyless, sidecar } from "../translate/builders.ts";
import { docsExamplesSuite } from "./docs-examples.ts";

docsExamplesSuite({
  doc: new URL("../../docs/rules-cluster.md", import.meta.url),
  proxies: {
    "productpage-sidecar": sidecar("productpage-1", "productpage", 9080),
    "chat-sidecar": sidecar("chat-1", "chat", 8000),
    "productpage-grpc-js": proxyless("productpage-grpc-1", "productpage", "gRPC Node Pure JS/1.14.1"),
    "productpage-c-core": proxyless("productpage-grpc-1", "productpage", "gRPC C-core linux Python/C-core 29.0.0 Python 1.51.1"),
  },
  statusViews: [
    "http_routes_status",
    "load_balancing_status",
    "hash_policies_status",
    "color_routing_status",
    "connection_policies_status",
    "circuit_breakers_status",
    "outlier_detection_status",
    "health_checks_status",
    "tcp_routes_status",
  ],
});
