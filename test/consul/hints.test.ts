import { describe, expect, it } from "vitest";
import { CatalogState } from "../../src/sources/consul/catalog-state.ts";
import type { ConsulServiceEntry, ConsulStateCheck } from "../../src/sources/consul/consul-types.ts";
import { CheckIndex } from "../../src/sources/consul/hints.ts";

function entry(node: string, id: string, service: string, checks: Array<[string, string, "passing" | "warning" | "critical"]>): ConsulServiceEntry {
  return {
    Node: { Node: node, Address: "10.0.0.1", Datacenter: "dc1", Meta: {} },
    Service: {
      ID: id,
      Service: service,
      Kind: "",
      Tags: [],
      Address: "",
      Port: 80,
      Meta: {},
      Weights: { Passing: 1, Warning: 1 },
      Proxy: null,
      Locality: null,
    },
    Checks: checks.map(([checkId, serviceId, status]) => ({ CheckID: checkId, ServiceID: serviceId, Status: status })),
  };
}

const check = (node: string, checkId: string, status: "passing" | "warning" | "critical", serviceId = "", serviceName = ""): ConsulStateCheck => ({
  Node: node,
  CheckID: checkId,
  Status: status,
  ServiceID: serviceId,
  ServiceName: serviceName,
});

describe("change hints: comparing check lists with what was read", () => {
  it("a critical list agrees with a health answer that shows the same critical checks", () => {
    const state = new CatalogState({});
    state.set("web", [
      entry("n1", "web-1", "web", [["serfHealth", "", "passing"], ["web-1-ttl", "web-1", "critical"]]),
      entry("n2", "web-2", "web", [["serfHealth", "", "passing"], ["web-2-ttl", "web-2", "passing"]]),
    ]);
    const critical = new CheckIndex(false);
    critical.update([check("n1", "web-1-ttl", "critical", "web-1", "web"), check("n9", "other", "critical", "x-1", "x")]);
    expect(critical.signature("web", state.nodesOf("web"))).toBe(state.criticalSignature("web"));

    // A maintenance check appears for web-2: the two disagree until web is read again.
    critical.update([
      check("n1", "web-1-ttl", "critical", "web-1", "web"),
      check("n2", "_service_maintenance:web-2", "critical", "web-2", "web"),
    ]);
    expect(critical.signature("web", state.nodesOf("web"))).not.toBe(state.criticalSignature("web"));

    // A node-level check counts for every service with an instance on that node.
    critical.update([check("n1", "web-1-ttl", "critical", "web-1", "web"), check("n2", "_node_maintenance", "critical")]);
    expect(critical.signature("web", state.nodesOf("web"))).not.toBe(state.criticalSignature("web"));
    expect(critical.signature("db", ["n7"])).toBe("");
  });

  it("the all-checks list also tells registrations, deregistrations and warnings apart", () => {
    const state = new CatalogState({});
    state.set("api", [entry("n1", "api-1", "api", [["serfHealth", "", "passing"], ["api-1-ttl", "api-1", "passing"]])]);
    const all = new CheckIndex(true);
    const base = [check("n1", "serfHealth", "passing"), check("n1", "api-1-ttl", "passing", "api-1", "api")];
    all.update(base);
    expect(all.signature("api", state.nodesOf("api"))).toBe(state.checksSignature("api"));
    all.update([...base, check("n3", "api-2-ttl", "passing", "api-2", "api")]);
    expect(all.signature("api", state.nodesOf("api"))).not.toBe(state.checksSignature("api"));
    all.update([check("n1", "serfHealth", "passing"), check("n1", "api-1-ttl", "warning", "api-1", "api")]);
    expect(all.signature("api", state.nodesOf("api"))).not.toBe(state.checksSignature("api"));
    all.update([check("n1", "serfHealth", "passing")]);
    expect(all.signature("api", state.nodesOf("api"))).not.toBe(state.checksSignature("api"));
  });
});
