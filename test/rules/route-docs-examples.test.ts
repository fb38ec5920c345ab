/** Keeps docs/rules-route.md honest: see docs-examples.ts. */
import { docsExamplesSuite, sidecar } from "./docs-examples.ts";

docsExamplesSuite({
  doc: new URL("../../docs/rules-route.md", import.meta.url),
  proxies: {
    "productpage-sidecar": sidecar("productpage-1", "productpage", 9080),
    "reviews-sidecar": sidecar("reviews-1", "reviews", 9080),
    "productpage-proxyless": {
      id: "productpage-grpc-1",
      service: "productpage",
      kind: "grpc",
      inboundPort: null,
      appPort: null,
      outboundPort: 15001,
      userAgent: "gRPC Node Pure JS",
    },
  },
  statusViews: [
    "http_routes_status",
    "timeout_policies_status",
    "retry_policies_status",
    "fault_policies_status",
    "drop_policies_status",
    "rate_limit_policies_status",
  ],
});
