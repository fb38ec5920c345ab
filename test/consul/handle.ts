/**
 * What the Consul source suite runs against: a Consul (the in-process test server,
 * or a real one named by CONSUL_HTTP_ADDR), a fault proxy in front of it for the
 * source under test, and an admin client that writes to Consul directly through
 * its documented catalog API (so faults never get in the way of test setup).
 */
import { ConsulTestServer } from "./consul-test-server.ts";
import { FaultProxy } from "./fault-proxy.ts";

export type CheckStatus = "passing" | "warning" | "critical";

export interface InstanceSpec {
  readonly node: string;
  readonly nodeAddress?: string;
  readonly nodeMeta?: Record<string, string>;
  readonly id: string;
  readonly service: string;
  readonly address?: string;
  readonly port: number;
  readonly tags?: readonly string[];
  readonly meta?: Record<string, string>;
  readonly weights?: { readonly Passing: number; readonly Warning: number };
  readonly kind?: "connect-proxy";
  readonly proxy?: {
    readonly DestinationServiceName: string;
    readonly DestinationServiceID: string;
    readonly LocalServicePort: number;
  };
  /** Service checks; ids are used verbatim as CheckID. Default: none. */
  readonly checks?: readonly { readonly id: string; readonly status: CheckStatus; readonly output?: string }[];
}

/** Writes to Consul through PUT /v1/catalog/register and /v1/catalog/deregister. */
export class ConsulAdmin {
  private readonly nodes = new Map<string, string>();

  constructor(
    readonly address: string,
    private readonly token: string | undefined,
  ) {}

  async register(spec: InstanceSpec): Promise<void> {
    const nodeAddress = spec.nodeAddress ?? this.nodes.get(spec.node) ?? "10.0.0.1";
    this.nodes.set(spec.node, nodeAddress);
    const service: Record<string, unknown> = {
      ID: spec.id,
      Service: spec.service,
      Port: spec.port,
      Tags: spec.tags ?? [],
      Meta: spec.meta ?? {},
    };
    if (spec.address !== undefined) service.Address = spec.address;
    if (spec.weights !== undefined) service.Weights = spec.weights;
    if (spec.kind !== undefined) service.Kind = spec.kind;
    if (spec.proxy !== undefined) service.Proxy = spec.proxy;
    const body: Record<string, unknown> = {
      Node: spec.node,
      Address: nodeAddress,
      Service: service,
      Checks: (spec.checks ?? []).map((c) => ({
        Node: spec.node,
        CheckID: c.id,
        Name: c.id,
        Status: c.status,
        Output: c.output ?? "",
        ServiceID: spec.id,
      })),
    };
    if (spec.nodeMeta !== undefined) body.NodeMeta = spec.nodeMeta;
    else body.SkipNodeUpdate = true;
    await this.put("/v1/catalog/register", body);
  }

  /** Sets a service check (or, with serviceId "", a node check) to a status. */
  async setCheck(node: string, checkId: string, serviceId: string, status: CheckStatus, output = ""): Promise<void> {
    await this.put("/v1/catalog/register", {
      Node: node,
      Address: this.nodes.get(node) ?? "10.0.0.1",
      SkipNodeUpdate: true,
      Check: { Node: node, CheckID: checkId, Name: checkId, Status: status, Output: output, ServiceID: serviceId },
    });
  }

  async removeCheck(node: string, checkId: string): Promise<void> {
    await this.put("/v1/catalog/deregister", { Node: node, CheckID: checkId });
  }

  async deregister(node: string, serviceId: string): Promise<void> {
    await this.put("/v1/catalog/deregister", { Node: node, ServiceID: serviceId });
  }

  async deregisterNode(node: string): Promise<void> {
    await this.put("/v1/catalog/deregister", { Node: node });
    this.nodes.delete(node);
  }

  /** Removes every node this admin registered. */
  async cleanup(): Promise<void> {
    const nodes = [...this.nodes.keys()];
    for (let i = 0; i < nodes.length; i += 20) {
      await Promise.all(nodes.slice(i, i + 20).map((n) => this.deregisterNode(n)));
    }
  }

  async get(path: string): Promise<{ index: number; body: unknown }> {
    const res = await fetch(new URL(path, this.address), { headers: this.headers() });
    if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
    return { index: Number(res.headers.get("x-consul-index") ?? "0"), body: await res.json() };
  }

  private headers(): Record<string, string> {
    return this.token === undefined ? {} : { "X-Consul-Token": this.token };
  }

  private async put(path: string, body: unknown): Promise<void> {
    const res = await fetch(new URL(path, this.address), {
      method: "PUT",
      headers: { ...this.headers(), "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`PUT ${path}: ${res.status} ${await res.text()}`);
    await res.arrayBuffer();
  }
}

export interface ConsulHandle {
  readonly kind: "test-server" | "real-consul";
  /** Where the source under test connects: the fault proxy. */
  readonly address: string;
  readonly proxy: FaultProxy;
  readonly admin: ConsulAdmin;
  readonly datacenter: string;
  readonly token: string | undefined;
  close(): Promise<void>;
}

export async function testServerHandle(): Promise<ConsulHandle> {
  const server = await ConsulTestServer.start();
  const proxy = await FaultProxy.start(server.address);
  const admin = new ConsulAdmin(server.address, undefined);
  return {
    kind: "test-server",
    address: proxy.address,
    proxy,
    admin,
    datacenter: server.datacenter,
    token: undefined,
    async close() {
      await proxy.close();
      await server.close();
    },
  };
}

export async function realConsulHandle(address: string, token: string | undefined): Promise<ConsulHandle> {
  const base = /^[a-z]+:\/\//i.test(address) ? address : `http://${address}`;
  const admin = new ConsulAdmin(base, token);
  const self = (await admin.get("/v1/agent/self")).body as { Config?: { Datacenter?: string } };
  const proxy = await FaultProxy.start(base);
  return {
    kind: "real-consul",
    address: proxy.address,
    proxy,
    admin,
    datacenter: self.Config?.Datacenter ?? "dc1",
    token,
    async close() {
      await admin.cleanup();
      await proxy.close();
    },
  };
}
