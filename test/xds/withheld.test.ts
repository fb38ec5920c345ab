import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { Message } from "@bufbuild/protobuf";
import type { ClusterLoadAssignment } from "../../src/gen/envoy/config/endpoint/v3/endpoint_pb.ts";
import type { LbEndpoint } from "../../src/gen/envoy/config/endpoint/v3/endpoint_components_pb.ts";
import type { Proxy } from "../../src/model/proxy.ts";
import type { RegistryState } from "../../src/model/registry.ts";
import { emptyRules } from "../../src/model/rules.ts";
import { SnapshotBuilder } from "../../src/translate/incremental-snapshot.ts";
import { translate } from "../../src/translate/translate.ts";
import { ResourceCache, type ResourceGate } from "../../src/xds/cache.ts";
import { httpService, registryOf } from "../translate/builders.ts";

/**
 * A resource that fails field validation is withheld from proxies, and comes
 * back once it passes again, whether the change that broke or mended it took
 * the endpoint fast path or a full rebuild.
 */
const BAD_ADDRESS = "10.0.0.66";

/** Rejects an endpoint assignment with an endpoint at BAD_ADDRESS (standing in for any field rule). */
const gate: ResourceGate = (kind, _name, message: Message) => {
  if (kind !== "endpoint") return [];
  const addresses = (message as ClusterLoadAssignment).endpoints.flatMap((group) => group.lbEndpoints.map(addressOf));
  return addresses.includes(BAD_ADDRESS) ? [`endpoint address ${BAD_ADDRESS} refused`] : [];
};

function addressOf(lb: LbEndpoint): string {
  if (lb.hostIdentifier.case !== "endpoint") return "";
  const address = lb.hostIdentifier.value.address?.address;
  return address?.case === "socketAddress" ? address.value.address : "";
}

const proxy: Proxy = { id: "web-1", service: "web", kind: "envoy", inboundPort: null, appPort: null, outboundPort: 15001, userAgent: "envoy" };

function registry(apiAddresses: readonly string[]): RegistryState {
  return registryOf(httpService("web", ["10.0.1.1"]), httpService("api", apiAddresses), httpService("db", ["10.0.2.1"]));
}

function endpointNames(cache: ResourceCache): { served: string[]; withheld: string[] } {
  const view = cache.viewFor(proxy)!;
  return { served: [...view.resources.endpoint.keys()].sort(), withheld: [...view.withheld].sort() };
}

describe("withheld resources", () => {
  for (const path of ["fast path", "full rebuild"] as const) {
    it(`withholds a failing endpoint assignment and restores it once mended (${path})`, () => {
      const builder = new SnapshotBuilder();
      const cache = new ResourceCache(translate, gate, pino({ level: "silent" }), path === "fast path" ? undefined : null);
      cache.retain(proxy);
      cache.setSnapshot(builder.build(registry(["10.0.0.1", "10.0.0.2"]), emptyRules));
      expect(endpointNames(cache)).toEqual({ served: ["outbound|api", "outbound|db", "outbound|web"], withheld: [] });

      cache.setSnapshot(builder.build(registry(["10.0.0.1", BAD_ADDRESS]), emptyRules));
      expect(endpointNames(cache)).toEqual({ served: ["outbound|db", "outbound|web"], withheld: ["outbound|api"] });
      expect(cache.invalidResources()).toEqual([{ kind: "endpoint", name: "outbound|api", violations: [`endpoint address ${BAD_ADDRESS} refused`] }]);

      cache.setSnapshot(builder.build(registry(["10.0.0.1", "10.0.0.3"]), emptyRules));
      expect(endpointNames(cache)).toEqual({ served: ["outbound|api", "outbound|db", "outbound|web"], withheld: [] });
      expect(cache.invalidResources()).toEqual([]);
      expect(cache.stats().endpointPatches).toBe(path === "fast path" ? 2 : 0);
    });
  }
});
