import { describe, expect, it } from "vitest";
import type { Instance, RegistryState, Service } from "../../src/model/registry.ts";
import { mergeRegistries } from "../../src/sources/merge-registry.ts";

function inst(service: string, id: string, address: string): Instance {
  return {
    id,
    service,
    address,
    port: 8080,
    meshPort: null,
    labels: {},
    region: "",
    zone: "",
    weight: 1,
    health: "healthy",
  };
}

function svc(name: string, instances: Instance[], protocol: Service["protocol"] = "http", port = 80): Service {
  return { name, protocol, port, instances };
}

const registry = (...services: Service[]): RegistryState => ({ services: new Map(services.map((s) => [s.name, s])) });

describe("mergeRegistries", () => {
  const db = registry(
    svc("both", [inst("both", "db-1", "10.9.0.1")], "grpc", 9090),
    svc("only-db", [inst("only-db", "db-2", "10.9.0.2")]),
    svc("same", [inst("same", "db-3", "10.9.0.3")]),
  );
  const consul = registry(
    svc("both", [inst("both", "n1/both-1", "10.0.0.1")]),
    svc("only-consul", [inst("only-consul", "n1/oc-1", "10.0.0.2")], "tcp", 5432),
    svc("same", [inst("same", "n1/same-1", "10.0.0.3")]),
  );
  const merged = mergeRegistries(db, consul);

  it("takes instances from Consul for services Consul knows, never mixing in database instances", () => {
    expect(merged.services.get("both")!.instances.map((i) => i.id)).toEqual(["n1/both-1"]);
    expect(merged.services.get("same")!.instances.map((i) => i.id)).toEqual(["n1/same-1"]);
  });

  it("lets a database row set protocol and port of a Consul service", () => {
    expect(merged.services.get("both")).toMatchObject({ protocol: "grpc", port: 9090 });
  });

  it("keeps services known to only one side as they are", () => {
    expect(merged.services.get("only-db")).toBe(db.services.get("only-db"));
    expect(merged.services.get("only-consul")).toBe(consul.services.get("only-consul"));
  });

  it("orders services by name and is pure", () => {
    expect([...merged.services.keys()]).toEqual(["both", "only-consul", "only-db", "same"]);
    expect(mergeRegistries(db, consul)).toEqual(merged);
    expect(db.services.get("both")!.instances[0]!.id).toBe("db-1");
  });

  it("falls back to the database definition when Consul forgets a service", () => {
    const after = mergeRegistries(db, registry(svc("only-consul", [])));
    expect(after.services.get("both")!.instances.map((i) => i.id)).toEqual(["db-1"]);
  });

  it("with an empty side returns the other", () => {
    expect([...mergeRegistries(db, registry()).services.values()]).toEqual([...db.services.values()].sort((a, b) => (a.name < b.name ? -1 : 1)));
    expect([...mergeRegistries(registry(), consul).services.keys()]).toEqual(["both", "only-consul", "same"]);
  });
});
