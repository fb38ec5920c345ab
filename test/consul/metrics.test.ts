import { Registry } from "prom-client";
import { afterEach, expect, it } from "vitest";
import { ConsulRegistrySource, registerConsulMetrics } from "../../src/sources/consul/index.ts";
import { ConsulTestServer } from "./consul-test-server.ts";
import { ConsulAdmin } from "./handle.ts";
import { eventually } from "./observer.ts";

let server: ConsulTestServer | null = null;
let source: ConsulRegistrySource | null = null;
afterEach(async () => {
  await source?.stop();
  await server?.close();
});

it("exposes degraded, readiness and query counts as Prometheus metrics", async () => {
  server = await ConsulTestServer.start();
  await new ConsulAdmin(server.address, undefined).register({ node: "n1", id: "web-1", service: "web", port: 80 });
  source = new ConsulRegistrySource({ address: server.address, backoffInitialMs: 50, backoffMaxMs: 100 });
  const registry = new Registry();
  registerConsulMetrics(registry, source);
  await source.start(() => {});
  let text = await registry.metrics();
  expect(text).toMatch(/^signalbox_consul_ready 1$/m);
  expect(text).toMatch(/^signalbox_consul_degraded 0$/m);
  expect(text).toMatch(/^signalbox_consul_services 1$/m);
  expect(text).toMatch(/^signalbox_consul_max_connections 66$/m);
  expect(text).toMatch(/^signalbox_consul_queries_total\{outcome="ok"\} 3$/m);

  server.faults.set("error500");
  await eventually(() => source!.status().degraded, 2000, "degraded");
  text = await registry.metrics();
  expect(text).toMatch(/^signalbox_consul_degraded 1$/m);
  expect(text).toMatch(/^signalbox_consul_failing_watches [1-3]$/m);
  expect(text).toMatch(/^signalbox_consul_queries_total\{outcome="http"\} [1-9]\d*$/m);
});
