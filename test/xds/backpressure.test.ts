import { create, fromBinary } from "@bufbuild/protobuf";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import {
  DiscoveryRequestSchema,
  DiscoveryResponseSchema,
  type DiscoveryResponse,
} from "../../src/gen/envoy/service/discovery/v3/discovery_pb.ts";
import type { Proxy } from "../../src/model/proxy.ts";
import type { RegistryState } from "../../src/model/registry.ts";
import { emptyRules } from "../../src/model/rules.ts";
import { buildSnapshot } from "../../src/translate/build-snapshot.ts";
import { TYPE_URLS } from "../../src/translate/resource-types.ts";
import { translate } from "../../src/translate/translate.ts";
import { ResourceCache } from "../../src/xds/cache.ts";
import { withNonce } from "../../src/xds/encoding.ts";
import { XdsMetrics } from "../../src/xds/metrics.ts";
import { PushScheduler } from "../../src/xds/push-scheduler.ts";
import { SotwStream } from "../../src/xds/sotw-stream.ts";

/** A stuck proxy holds up nobody, queues nothing, and gets only the newest state once it drains. */
const logger = pino({ level: "silent" });

const registry = (address: string): RegistryState => ({
  services: new Map([
    [
      "api",
      {
        name: "api",
        protocol: "http",
        port: 80,
        instances: [{ id: "api-1", service: "api", address, port: 8080, meshPort: null, labels: {}, region: "", zone: "", weight: 1, health: "healthy" }],
      },
    ],
  ]),
});

function stream(cache: ResourceCache, id: string, writable: () => boolean) {
  const proxy: Proxy = { id, service: "web", kind: "envoy", inboundPort: null, appPort: null, outboundPort: 15001, userAgent: "envoy" };
  const sent: DiscoveryResponse[] = [];
  let drain: (() => void) | null = null;
  const s = new SotwStream(
    { streamId: 1, proxy, protocol: "sotw", connectedAt: "", types: {} },
    cache,
    {
      write: (body, nonce) => {
        sent.push(fromBinary(DiscoveryResponseSchema, withNonce(body, nonce)));
        return writable();
      },
      onDrain: (callback) => void (drain = callback),
    },
    new XdsMetrics(),
    logger,
  );
  s.handleRequest(create(DiscoveryRequestSchema, { typeUrl: TYPE_URLS.endpoint, resourceNames: ["outbound|api"] }));
  return { s, sent, drain: () => drain?.() };
}

describe("backpressure", () => {
  it("skips a stream whose buffer is full, keeps serving the others, and sends the stuck one only the newest state on drain", async () => {
    const cache = new ResourceCache(translate, () => [], logger);
    cache.setSnapshot(buildSnapshot(registry("10.0.0.1"), emptyRules));
    const stuck = stream(cache, "stuck", () => false);
    const healthy = stream(cache, "healthy", () => true);
    expect(stuck.sent).toHaveLength(1);
    const scheduler = new PushScheduler(1);
    for (let i = 2; i <= 5; i++) {
      cache.setSnapshot(buildSnapshot(registry(`10.0.0.${i}`), emptyRules));
      scheduler.schedule([stuck.s, healthy.s]);
      await scheduler.idle();
    }
    expect(healthy.sent).toHaveLength(5);
    expect(stuck.sent).toHaveLength(1); // nothing written while full
    stuck.drain();
    expect(stuck.sent).toHaveLength(2); // one response: the newest state
    expect(stuck.sent[1]?.versionInfo).toBe(healthy.sent[4]?.versionInfo);
  });

  it("refreshes streams in slices, yielding to the event loop between them", async () => {
    const order: string[] = [];
    const scheduler = new PushScheduler(2);
    const streams = Array.from({ length: 5 }, (_, i) => ({ refresh: () => void order.push(`s${i}`) }));
    scheduler.schedule(streams);
    setImmediate(() => order.push("io"));
    await scheduler.idle();
    expect(order.filter((x) => x.startsWith("s"))).toHaveLength(5);
    expect(order.indexOf("io")).toBeGreaterThan(0);
    expect(order.indexOf("io")).toBeLessThan(order.length - 1);
  });
});
