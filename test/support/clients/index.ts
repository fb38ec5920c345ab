// Test harness for real xDS clients (grpc-js-xds and gRPC C-core) against an xDS server.
// See runner.ts for the client processes, backend.ts for the echo backends and
// static-ads.ts for a scripted ADS peer with resource builders.
export * from "./backend.ts";
export * from "./runner.ts";
export * from "./static-ads.ts";
