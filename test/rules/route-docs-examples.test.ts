/** Keeps docs/rules-route.md honest: see docs-examples.ts. */
import { proxyless, sidecar } from "../translate/builders.ts";
import { docsExamplesSuite } from "./docs-examples.ts";

docsExamplesSuite({
  doc: new URL("../../docs/rules-route.md", import.meta.url),
  proxies: {
    "productpage-sidecar": sidecar("productpage-1", "productpage", 9080),
    "reviews-sidecar": sidecar("reviews-1", "reviews", 9080),
    "productpage-proxyless": proxyless("productpage-grpc-1", "productpage", "gRPC Node Pure JS"),
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
