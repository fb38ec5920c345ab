import { describe, expect, it } from "vitest";
import { parseCatalogServices, parseHealthService, ShapeError } from "../../src/sources/consul/consul-types.ts";
import { checkVerdict, mapService } from "../../src/sources/consul/mapping.ts";

type Raw = Record<string, unknown>;

function entry(opts: {
  node?: string;
  nodeAddress?: string;
  nodeMeta?: Record<string, string>;
  dc?: string;
  id: string;
  service?: string;
  kind?: string;
  address?: string;
  port?: number;
  tags?: string[];
  meta?: Record<string, string>;
  weights?: { Passing: number; Warning: number } | null;
  proxy?: Raw;
  locality?: Raw;
  checks?: Array<{ CheckID: string; Status: string; ServiceID?: string }>;
}): Raw {
  const node = opts.node ?? "n1";
  return {
    Node: {
      ID: "x",
      Node: node,
      Address: opts.nodeAddress ?? "10.0.0.1",
      Datacenter: opts.dc ?? "dc1",
      TaggedAddresses: {},
      Meta: opts.nodeMeta ?? {},
    },
    Service: {
      ID: opts.id,
      Service: opts.service ?? "web",
      Kind: opts.kind ?? "",
      Tags: opts.tags ?? [],
      Address: opts.address ?? "",
      Port: opts.port ?? 8080,
      Meta: opts.meta ?? null,
      ...(opts.weights === null ? {} : { Weights: opts.weights ?? { Passing: 1, Warning: 1 } }),
      ...(opts.proxy ? { Proxy: opts.proxy } : {}),
      ...(opts.locality ? { Locality: opts.locality } : {}),
    },
    Checks: [
      { Node: node, CheckID: "serfHealth", Status: "passing", ServiceID: "" },
      ...(opts.checks ?? []).map((c) => ({ Node: node, ServiceID: opts.id, ...c })),
    ],
  };
}

const map = (name: string, raws: Raw[], sidecars: Raw[] = [], dc?: string) =>
  mapService(
    name,
    parseHealthService(raws, name),
    sidecars.length ? parseHealthService(sidecars, (sidecars[0]!.Service as Raw).Service as string) : [],
    dc === undefined ? {} : { datacenter: dc },
  );

describe("health mapping", () => {
  it("folds checks: maintenance > critical > warning > passing", () => {
    expect(checkVerdict([])).toBe("passing");
    expect(checkVerdict([{ CheckID: "a", Status: "passing" }])).toBe("passing");
    expect(checkVerdict([{ CheckID: "a", Status: "warning" }, { CheckID: "b", Status: "passing" }])).toBe("warning");
    expect(checkVerdict([{ CheckID: "a", Status: "warning" }, { CheckID: "b", Status: "critical" }])).toBe("critical");
    expect(
      checkVerdict([
        { CheckID: "a", Status: "critical" },
        { CheckID: "_service_maintenance:web-1", Status: "critical" },
      ]),
    ).toBe("maintenance");
    expect(checkVerdict([{ CheckID: "_node_maintenance", Status: "critical" }])).toBe("maintenance");
  });

  it("maps verdicts to health and weights", () => {
    const svc = map("web", [
      entry({ id: "a", weights: { Passing: 10, Warning: 2 } }),
      entry({ id: "b", weights: { Passing: 10, Warning: 2 }, checks: [{ CheckID: "c", Status: "warning" }] }),
      entry({ id: "c", weights: { Passing: 10, Warning: 2 }, checks: [{ CheckID: "c", Status: "critical" }] }),
      entry({ id: "d", checks: [{ CheckID: "_service_maintenance:d", Status: "critical" }] }),
      entry({ id: "e", weights: { Passing: 3, Warning: 0 }, checks: [{ CheckID: "c", Status: "warning" }] }),
      entry({ id: "f", weights: null }),
    ])!;
    expect(svc.instances.map((i) => [i.id, i.health, i.weight])).toEqual([
      ["n1/a", "healthy", 10],
      ["n1/b", "healthy", 2],
      ["n1/c", "unhealthy", 10],
      ["n1/d", "draining", 1],
      ["n1/e", "unhealthy", 1],
      ["n1/f", "healthy", 1],
    ]);
  });

  it("a node check applies to every instance on the node", () => {
    const raw = entry({ id: "a" });
    (raw.Checks as Raw[])[0]!.Status = "critical";
    expect(map("web", [raw])!.instances[0]!.health).toBe("unhealthy");
  });

  it("scales weights above 128 proportionally", () => {
    const svc = map("web", [
      entry({ id: "a", weights: { Passing: 1000, Warning: 1 } }),
      entry({ id: "b", weights: { Passing: 500, Warning: 1 } }),
      entry({ id: "c", weights: { Passing: 1, Warning: 1 } }),
    ])!;
    expect(svc.instances.map((i) => i.weight)).toEqual([128, 64, 1]);
  });
});

describe("instance mapping", () => {
  it("uses the service address, else the node address; ids are node-qualified and sorted", () => {
    const svc = map("web", [
      entry({ node: "n2", id: "web", nodeAddress: "10.0.0.2" }),
      entry({ node: "n1", id: "web", address: "192.168.1.5" }),
    ])!;
    expect(svc.instances.map((i) => [i.id, i.address])).toEqual([
      ["n1/web", "192.168.1.5"],
      ["n2/web", "10.0.0.2"],
    ]);
  });

  it("labels: tags as presence, meta as values, meta wins; keys sorted", () => {
    const svc = map("web", [entry({ id: "a", tags: ["zeta", "v1", "blue"], meta: { blue: "navy", alpha: "1" } })])!;
    expect(Object.entries(svc.instances[0]!.labels)).toEqual([
      ["alpha", "1"],
      ["blue", "navy"],
      ["v1", ""],
      ["zeta", ""],
    ]);
  });

  it("locality: Service.Locality, then node meta, then the datacenter", () => {
    const svc = map(
      "web",
      [
        entry({ id: "a", locality: { Region: "us-east", Zone: "us-east-1b" }, nodeMeta: { "signalbox-zone": "x" } }),
        entry({ id: "b", nodeMeta: { "signalbox-region": "eu", "signalbox-zone": "eu-1a" } }),
        entry({ id: "c", dc: "dc7" }),
        entry({ id: "d", dc: "" }),
      ],
      [],
      "fallback-dc",
    )!;
    expect(svc.instances.map((i) => [i.region, i.zone])).toEqual([
      ["us-east", "us-east-1b"],
      ["eu", "eu-1a"],
      ["dc7", ""],
      ["fallback-dc", ""],
    ]);
  });

  it("protocol and Host port come from the lowest-id instance with a valid value", () => {
    const svc = map("web", [
      entry({ id: "c", meta: { protocol: "http2", "signalbox-port": "8443" } }),
      entry({ id: "a", meta: { protocol: "carrier-pigeon", "signalbox-port": "99999" } }),
      entry({ id: "b", meta: { protocol: "GRPC" } }),
    ])!;
    expect([svc.protocol, svc.port]).toEqual(["grpc", 8443]);
    expect(map("web", [entry({ id: "a" })])).toMatchObject({ protocol: "http", port: 80 });
  });
});

describe("sidecars", () => {
  const proxy = (id: string, dest: string, port: number, node = "n1", extra: Partial<Parameters<typeof entry>[0]> = {}) =>
    entry({
      node,
      id,
      service: "web-sidecar-proxy",
      kind: "connect-proxy",
      port,
      proxy: { DestinationServiceName: "web", DestinationServiceID: dest, LocalServicePort: 8080 },
      ...extra,
    });

  it("maps a connect-proxy on the same node to the instance's mesh port", () => {
    const svc = map(
      "web",
      [entry({ id: "web-1" }), entry({ id: "web-2" }), entry({ node: "n2", id: "web-1" })],
      [proxy("web-1-sidecar-proxy", "web-1", 21000), proxy("other", "web-1", 21005, "n3")],
    )!;
    expect(svc.instances.map((i) => [i.id, i.meshPort])).toEqual([
      ["n1/web-1", 21000],
      ["n1/web-2", null],
      ["n2/web-1", null],
    ]);
  });

  it("signalbox-mesh-port meta wins over a registered proxy", () => {
    const svc = map(
      "web",
      [entry({ id: "web-1", meta: { "signalbox-mesh-port": "15006" } })],
      [proxy("web-1-sidecar-proxy", "web-1", 21000)],
    )!;
    expect(svc.instances[0]!.meshPort).toBe(15006);
  });

  it("the sidecar's own checks count, not its node checks twice", () => {
    const sick = proxy("p", "web-1", 21000, "n1", { checks: [{ CheckID: "listening", Status: "critical" }] });
    expect(map("web", [entry({ id: "web-1" })], [sick])!.instances[0]!.health).toBe("unhealthy");
  });

  it("proxies and gateways are not services of their own", () => {
    expect(map("web-sidecar-proxy", [proxy("p", "web-1", 21000)])).toBeNull();
    expect(map("gw", [entry({ id: "gw", service: "gw", kind: "mesh-gateway" })])).toBeNull();
    expect(map("web", [])).toBeNull();
  });
});

describe("answer validation", () => {
  it("accepts Consul's catalog shape and rejects others", () => {
    expect([...parseCatalogServices({ consul: [], web: ["v1"] })]).toEqual([
      ["consul", []],
      ["web", ["v1"]],
    ]);
    expect(() => parseCatalogServices(["web"])).toThrow(ShapeError);
    expect(() => parseCatalogServices({ web: "v1" })).toThrow(ShapeError);
    expect(() => parseCatalogServices(null)).toThrow(ShapeError);
  });

  it("rejects health answers of the wrong shape", () => {
    expect(() => parseHealthService({ unexpected: true }, "web")).toThrow(ShapeError);
    expect(() => parseHealthService([{ Node: {}, Service: {} }], "web")).toThrow(ShapeError);
    const wrongName = entry({ id: "a", service: "api" });
    expect(() => parseHealthService([wrongName], "web")).toThrow(/not "web"/);
    const badStatus = entry({ id: "a", checks: [{ CheckID: "c", Status: "meh" }] });
    expect(() => parseHealthService([badStatus], "web")).toThrow(/unknown status/);
    const badPort = entry({ id: "a" });
    (badPort.Service as Raw).Port = "80";
    expect(() => parseHealthService([badPort], "web")).toThrow(/port/);
    expect(parseHealthService([], "web")).toEqual([]);
  });
});
