/**
 * An in-process stand-in for Consul's HTTP API, following its documented semantics
 * closely enough that the Consul source suite passes against either.
 *
 * What it models (https://developer.hashicorp.com/consul/api-docs):
 * - a raft-like index that increases on every write, and Consul's index table:
 *   `services`, `nodes`, `checks`, `service.<name>` and `service_extinction`;
 *   GET /v1/catalog/services answers with the `services` index, and
 *   GET /v1/health/service/:name with `service.<name>` (or, for a service that
 *   does not exist, the extinction index / the table maximum), never below 1;
 *   GET /v1/health/state/:state with the `checks` index (any check change moves
 *   it), while a blocking query on it wakes only when a check in that state is
 *   added, removed or changed (Consul watches the state's part of the checks
 *   table), or at once when the checks index already passed the one sent;
 * - blocking queries: `?index=N&wait=D` holds the request until the query's index
 *   exceeds N or D (default 5m, at most 10m) plus up to D/16 of jitter has passed;
 *   writes that do not move the query's index do not release it;
 * - X-Consul-Index (plus X-Consul-KnownLeader, X-Consul-LastContact) on every read;
 * - writes: PUT /v1/catalog/register, /v1/catalog/deregister, the agent endpoints
 *   /v1/agent/service/register, /v1/agent/service/deregister/:id,
 *   /v1/agent/check/update/:id (and pass/warn/fail), /v1/agent/service/maintenance/:id
 *   and /v1/agent/maintenance (the `_service_maintenance:<id>` / `_node_maintenance`
 *   critical checks Consul adds);
 * - GET/PUT /v1/snapshot: save and restore the whole state (restoring puts indexes
 *   back, as a raft snapshot restore does; later writes continue above the
 *   highest index ever used, as raft does);
 * - ACLs when `aclToken` is set: an unknown token gets 403 "ACL not found", no
 *   token gets results filtered to nothing (with X-Consul-Results-Filtered-By-ACLs);
 * - `?dc=` other than its own datacenter: 500 "No path to datacenter".
 *
 * Test knobs beyond Consul: `rewindIndex()` (the index restarts low, as after a
 * restore into a fresh cluster), `faults` (garbage, wrong shape, 500, reset),
 * `stopListening()` / `resumeListening()` (connection refused), and `stats`
 * (open connections and requests in flight, current and peak).
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { ConnectionStats, Faults } from "./faults.ts";

export type Status = "passing" | "warning" | "critical";

interface NodeRec {
  node: string;
  id: string;
  address: string;
  datacenter: string;
  meta: Record<string, string>;
  taggedAddresses: Record<string, string>;
  createIndex: number;
  modifyIndex: number;
}

interface ServiceRec {
  node: string;
  id: string;
  service: string;
  kind: string;
  tags: string[];
  address: string;
  port: number;
  meta: Record<string, string>;
  weights: { Passing: number; Warning: number };
  proxy: Record<string, unknown> | null;
  locality: { Region: string; Zone: string } | null;
  createIndex: number;
  modifyIndex: number;
}

interface CheckRec {
  node: string;
  checkId: string;
  name: string;
  status: Status;
  notes: string;
  output: string;
  serviceId: string;
  serviceName: string;
  serviceTags: string[];
  type: string;
  createIndex: number;
  modifyIndex: number;
}

interface State {
  nodes: Map<string, NodeRec>;
  services: Map<string, ServiceRec>;
  checks: Map<string, CheckRec>;
  index: Map<string, number>;
}

export interface ConsulTestServerOptions {
  readonly datacenter?: string;
  /** Name and address of the node the /v1/agent endpoints act on. */
  readonly agentNode?: string;
  readonly agentAddress?: string;
  /** When set, ACLs are enforced with this single all-powerful token. */
  readonly aclToken?: string;
  readonly host?: string;
  readonly port?: number;
}

interface Waiter {
  /** True once the query's watched data changed (Consul's watch channel fired). */
  readonly fired: () => boolean;
  readonly answer: () => void;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const key = (node: string, id: string) => `${node}\u0000${id}`;

function emptyState(): State {
  return { nodes: new Map(), services: new Map(), checks: new Map(), index: new Map() };
}

function cloneState(s: State): State {
  return structuredClone(s);
}

export class ConsulTestServer {
  readonly faults = new Faults();
  readonly stats = new ConnectionStats();
  readonly datacenter: string;
  readonly agentNode: string;
  private readonly agentAddress: string;
  private readonly aclToken: string | undefined;
  private readonly server: http.Server;
  private state: State = emptyState();
  /** Lookup tables over `state` for reads; rebuilt on the first read after a write. */
  private lookups: { servicesByName: Map<string, ServiceRec[]>; checksByNode: Map<string, CheckRec[]> } | null = null;
  /** The raft index: every write takes the next one. */
  private raft = 0;
  private readonly waiters = new Set<Waiter>();
  /**
   * Per check status: bumped whenever a check in that status is added, removed or
   * changed (Consul's watch on the status index of the checks table).
   */
  private readonly checkWatch: Record<Status, number> = { passing: 0, warning: 0, critical: 0 };
  private host = "127.0.0.1";
  private port = 0;
  private listening = false;

  private constructor(options: ConsulTestServerOptions) {
    this.datacenter = options.datacenter ?? "dc1";
    this.agentNode = options.agentNode ?? "signalbox-test-agent";
    this.agentAddress = options.agentAddress ?? "127.0.0.1";
    this.aclToken = options.aclToken;
    this.server = http.createServer((req, res) => void this.handle(req, res));
    // Consul's HTTP server keeps idle connections; so does this one.
    this.server.keepAliveTimeout = 65_000;
    this.stats.attach(this.server);
    this.faults.on("change", () => this.wakeAll());
  }

  static async start(options: ConsulTestServerOptions = {}): Promise<ConsulTestServer> {
    const s = new ConsulTestServer(options);
    s.host = options.host ?? "127.0.0.1";
    s.port = options.port ?? 0;
    await s.resumeListening();
    // The agent's own node exists from the start, with its serf health check.
    s.write((idx) => {
      s.upsertNode(idx, { node: s.agentNode, address: s.agentAddress });
      s.upsertCheck(idx, {
        node: s.agentNode,
        checkId: "serfHealth",
        name: "Serf Health Status",
        status: "passing",
        serviceId: "",
      });
    });
    return s;
  }

  get address(): string {
    return `http://${this.host}:${this.port}`;
  }

  /** The current raft index (the last write's). */
  get index(): number {
    return this.raft;
  }

  async close(): Promise<void> {
    this.answerAll();
    await this.stopListening();
  }

  /** Refuses connections from now on (and drops open ones) until resumed. */
  async stopListening(): Promise<void> {
    if (!this.listening) return;
    this.listening = false;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    this.stats.destroyAll();
    await closed;
  }

  async resumeListening(): Promise<void> {
    if (this.listening) return;
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.port, this.host, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    this.port = (this.server.address() as AddressInfo).port;
    this.listening = true;
  }

  /**
   * Simulates a restore into a fresh cluster: every index drops to a low value and
   * the raft index continues from there. Blocked queries are answered at once with
   * the lower index. (The source must reset its index to 0 when it sees this.)
   */
  rewindIndex(to = 2): void {
    this.raft = to;
    const clamp = (n: number) => Math.min(n, to);
    for (const [k, v] of this.state.index) this.state.index.set(k, clamp(v));
    for (const n of this.state.nodes.values()) {
      n.createIndex = clamp(n.createIndex);
      n.modifyIndex = clamp(n.modifyIndex);
    }
    for (const s of this.state.services.values()) {
      s.createIndex = clamp(s.createIndex);
      s.modifyIndex = clamp(s.modifyIndex);
    }
    for (const c of this.state.checks.values()) {
      c.createIndex = clamp(c.createIndex);
      c.modifyIndex = clamp(c.modifyIndex);
    }
    this.answerAll();
  }

  // ---------------------------------------------------------------- writes

  private write(fn: (idx: number) => void): number {
    this.raft += 1;
    const idx = this.raft;
    this.lookups = null;
    fn(idx);
    this.wakeAll();
    return idx;
  }

  private bump(name: string, idx: number): void {
    this.state.index.set(name, idx);
  }

  private servicesOnNode(node: string): ServiceRec[] {
    return [...this.state.services.values()].filter((s) => s.node === node);
  }

  private upsertNode(
    idx: number,
    n: { node: string; address: string; id?: string; meta?: Record<string, string>; taggedAddresses?: Record<string, string> },
  ): void {
    const old = this.state.nodes.get(n.node);
    const next: NodeRec = {
      node: n.node,
      id: n.id ?? old?.id ?? "",
      address: n.address,
      datacenter: this.datacenter,
      meta: n.meta ?? old?.meta ?? {},
      taggedAddresses: n.taggedAddresses ?? old?.taggedAddresses ?? {},
      createIndex: old?.createIndex ?? idx,
      modifyIndex: idx,
    };
    if (old && sameExceptIndexes(old, next)) return;
    this.state.nodes.set(n.node, next);
    this.bump("nodes", idx);
    // A node change changes every health answer of its services.
    for (const s of this.servicesOnNode(n.node)) this.bump(`service.${s.service}`, idx);
  }

  private upsertService(idx: number, s: Omit<ServiceRec, "createIndex" | "modifyIndex">): void {
    const k = key(s.node, s.id);
    const old = this.state.services.get(k);
    const next: ServiceRec = { ...s, createIndex: old?.createIndex ?? idx, modifyIndex: idx };
    if (old && sameExceptIndexes(old, next)) return;
    this.state.services.set(k, next);
    this.bump("services", idx);
    this.bump(`service.${s.service}`, idx);
    if (old && old.service !== s.service) this.serviceGone(old.service, idx);
  }

  private upsertCheck(
    idx: number,
    c: { node: string; checkId: string; name?: string; status: Status; notes?: string; output?: string; serviceId: string },
  ): void {
    const k = key(c.node, c.checkId);
    const old = this.state.checks.get(k);
    const svc = c.serviceId === "" ? undefined : this.state.services.get(key(c.node, c.serviceId));
    if (c.serviceId !== "" && svc === undefined) {
      throw new HttpError(500, `Unknown service ID "${c.serviceId}" for check ID "${c.checkId}"`);
    }
    const next: CheckRec = {
      node: c.node,
      checkId: c.checkId,
      name: c.name ?? old?.name ?? c.checkId,
      status: c.status,
      notes: c.notes ?? old?.notes ?? "",
      output: c.output ?? old?.output ?? "",
      serviceId: c.serviceId,
      serviceName: svc?.service ?? "",
      serviceTags: svc?.tags ?? [],
      type: old?.type ?? "",
      createIndex: old?.createIndex ?? idx,
      modifyIndex: idx,
    };
    if (old && sameExceptIndexes(old, next)) return;
    this.state.checks.set(k, next);
    this.bump("checks", idx);
    if (old) this.checkWatch[old.status] += 1;
    this.checkWatch[next.status] += 1;
    if (svc) this.bump(`service.${svc.service}`, idx);
    else for (const s of this.servicesOnNode(c.node)) this.bump(`service.${s.service}`, idx);
  }

  private deleteCheck(idx: number, node: string, checkId: string): void {
    const k = key(node, checkId);
    const old = this.state.checks.get(k);
    if (!old) return;
    this.state.checks.delete(k);
    this.bump("checks", idx);
    this.checkWatch[old.status] += 1;
    if (old.serviceName !== "") this.bump(`service.${old.serviceName}`, idx);
    else for (const s of this.servicesOnNode(node)) this.bump(`service.${s.service}`, idx);
  }

  private deleteService(idx: number, node: string, id: string): void {
    const k = key(node, id);
    const old = this.state.services.get(k);
    if (!old) return;
    for (const c of [...this.state.checks.values()]) {
      if (c.node === node && c.serviceId === id) this.deleteCheck(idx, node, c.checkId);
    }
    this.state.services.delete(k);
    this.bump("services", idx);
    this.serviceGone(old.service, idx);
  }

  private serviceGone(name: string, idx: number): void {
    const remaining = [...this.state.services.values()].some((s) => s.service === name);
    if (remaining) {
      this.bump(`service.${name}`, idx);
    } else {
      this.state.index.delete(`service.${name}`);
      this.bump("service_extinction", idx);
    }
  }

  private deleteNode(idx: number, node: string): void {
    if (!this.state.nodes.has(node)) return;
    for (const s of this.servicesOnNode(node)) this.deleteService(idx, node, s.id);
    for (const c of [...this.state.checks.values()]) if (c.node === node) this.deleteCheck(idx, node, c.checkId);
    this.state.nodes.delete(node);
    this.bump("nodes", idx);
  }

  // ---------------------------------------------------------------- reads

  private maxIndex(...tables: string[]): number {
    return Math.max(0, ...tables.map((t) => this.state.index.get(t) ?? 0));
  }

  private catalogServicesIndex(): number {
    return this.maxIndex("services");
  }

  private healthServiceIndex(name: string): number {
    const own = this.state.index.get(`service.${name}`);
    if (own !== undefined) return own;
    const extinct = this.state.index.get("service_extinction");
    if (extinct !== undefined) return extinct;
    return this.maxIndex("nodes", "services", "checks");
  }

  private catalogServices(filtered: boolean): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    if (filtered) return out;
    const byName = new Map<string, Set<string>>();
    for (const s of this.state.services.values()) {
      let tags = byName.get(s.service);
      if (!tags) byName.set(s.service, (tags = new Set()));
      for (const t of s.tags) tags.add(t);
    }
    for (const name of [...byName.keys()].sort()) out[name] = [...byName.get(name)!].sort();
    return out;
  }

  private readLookups(): { servicesByName: Map<string, ServiceRec[]>; checksByNode: Map<string, CheckRec[]> } {
    if (this.lookups !== null) return this.lookups;
    const servicesByName = new Map<string, ServiceRec[]>();
    for (const rec of this.state.services.values()) {
      const list = servicesByName.get(rec.service);
      if (list) list.push(rec);
      else servicesByName.set(rec.service, [rec]);
    }
    const checksByNode = new Map<string, CheckRec[]>();
    for (const rec of this.state.checks.values()) {
      const list = checksByNode.get(rec.node);
      if (list) list.push(rec);
      else checksByNode.set(rec.node, [rec]);
    }
    this.lookups = { servicesByName, checksByNode };
    return this.lookups;
  }

  private healthService(name: string, passingOnly: boolean, filtered: boolean): unknown[] {
    if (filtered) return [];
    const lookups = this.readLookups();
    const services = [...(lookups.servicesByName.get(name) ?? [])].sort((a, b) =>
      a.node === b.node ? cmp(a.id, b.id) : cmp(a.node, b.node),
    );
    const out: unknown[] = [];
    for (const s of services) {
      const node = this.state.nodes.get(s.node);
      if (!node) continue;
      const checks = (lookups.checksByNode.get(s.node) ?? [])
        .filter((c) => c.node === s.node && (c.serviceId === "" || c.serviceId === s.id))
        .sort((a, b) => cmp(a.checkId, b.checkId));
      if (passingOnly && checks.some((c) => c.status !== "passing")) continue;
      out.push({
        Node: {
          ID: node.id,
          Node: node.node,
          Address: node.address,
          Datacenter: node.datacenter,
          TaggedAddresses: node.taggedAddresses,
          Meta: node.meta,
          CreateIndex: node.createIndex,
          ModifyIndex: node.modifyIndex,
        },
        Service: {
          ID: s.id,
          Service: s.service,
          Kind: s.kind,
          Tags: s.tags,
          Address: s.address,
          Meta: s.meta,
          Port: s.port,
          Weights: s.weights,
          EnableTagOverride: false,
          Proxy: s.proxy ?? { Mode: "", MeshGateway: {}, Expose: {} },
          Connect: {},
          ...(s.locality ? { Locality: s.locality } : {}),
          Namespace: "default",
          Datacenter: node.datacenter,
          CreateIndex: s.createIndex,
          ModifyIndex: s.modifyIndex,
        },
        Checks: checks.map((c) => ({
          Node: c.node,
          CheckID: c.checkId,
          Name: c.name,
          Status: c.status,
          Notes: c.notes,
          Output: c.output,
          ServiceID: c.serviceId,
          ServiceName: c.serviceName,
          ServiceTags: c.serviceTags,
          Type: c.type,
          Namespace: "default",
          CreateIndex: c.createIndex,
          ModifyIndex: c.modifyIndex,
        })),
      });
    }
    return out;
  }

  private healthState(state: "any" | Status, filtered: boolean): unknown[] {
    if (filtered) return [];
    return [...this.state.checks.values()]
      .filter((c) => state === "any" || c.status === state)
      .sort((a, b) => (a.node === b.node ? cmp(a.checkId, b.checkId) : cmp(a.node, b.node)))
      .map((c) => ({
        Node: c.node,
        CheckID: c.checkId,
        Name: c.name,
        Status: c.status,
        Notes: c.notes,
        Output: c.output,
        ServiceID: c.serviceId,
        ServiceName: c.serviceName,
        ServiceTags: c.serviceTags,
        Type: c.type,
        Namespace: "default",
        CreateIndex: c.createIndex,
        ModifyIndex: c.modifyIndex,
      }));
  }

  // ---------------------------------------------------------------- HTTP

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    try {
      if (this.faults.apply(req, res)) return;
      const url = new URL(req.url ?? "/", "http://consul");
      const dc = url.searchParams.get("dc");
      if (dc !== null && dc !== "" && dc !== this.datacenter) throw new HttpError(500, "No path to datacenter");
      const acl = this.checkAcl(req, url);
      const method = req.method ?? "GET";
      const path = url.pathname;
      let m: RegExpExecArray | null;

      if (method === "GET" && path === "/v1/catalog/services") {
        return await this.blockingRead(req, res, url, () => this.catalogServicesIndex(), () =>
          this.catalogServices(acl === "anonymous"),
        acl);
      }
      if (method === "GET" && (m = /^\/v1\/health\/service\/(.+)$/.exec(path))) {
        const name = decodeURIComponent(m[1]!);
        const passing = url.searchParams.has("passing") && url.searchParams.get("passing") !== "false";
        return await this.blockingRead(req, res, url, () => this.healthServiceIndex(name), () =>
          this.healthService(name, passing, acl === "anonymous"),
        acl);
      }
      if (method === "GET" && (m = /^\/v1\/health\/state\/([^/]+)$/.exec(path))) {
        const state = decodeURIComponent(m[1]!);
        if (state !== "any" && state !== "passing" && state !== "warning" && state !== "critical") {
          throw new HttpError(400, `Bad state: ${state}`);
        }
        const watch =
          state === "any"
            ? () => this.checkWatch.passing + this.checkWatch.warning + this.checkWatch.critical
            : () => this.checkWatch[state];
        return await this.blockingRead(
          req,
          res,
          url,
          () => this.maxIndex("checks"),
          () => this.healthState(state, acl === "anonymous"),
          acl,
          watch,
        );
      }
      if (method === "GET" && path === "/v1/status/leader") return json(res, 200, "127.0.0.1:8300");
      if (method === "GET" && path === "/v1/agent/self") {
        return json(res, 200, { Config: { Datacenter: this.datacenter, NodeName: this.agentNode, Server: true } });
      }
      if (method === "GET" && path === "/v1/snapshot") {
        if (acl !== "ok") throw new HttpError(403, "Permission denied");
        res.writeHead(200, { "Content-Type": "application/octet-stream", "X-Consul-Index": String(this.raft) });
        res.end(JSON.stringify({ raft: this.raft, state: serializeState(this.state) }));
        return;
      }
      if (method !== "PUT" && method !== "POST") throw new HttpError(405, "method not allowed");
      if (acl !== "ok") throw new HttpError(403, "Permission denied");
      const body = await readBody(req);

      if (path === "/v1/snapshot") {
        const snap = JSON.parse(body) as { raft: number; state: SerializedState };
        this.state = deserializeState(snap.state);
        this.lookups = null;
        // Raft continues above every index it ever handed out.
        this.raft = Math.max(this.raft, snap.raft) + 1;
        this.answerAll();
        return json(res, 200, null);
      }
      if (path === "/v1/catalog/register") return json(res, 200, this.catalogRegister(parseJson(body)));
      if (path === "/v1/catalog/deregister") return json(res, 200, this.catalogDeregister(parseJson(body)));
      if (path === "/v1/agent/service/register") return json(res, 200, this.agentRegister(parseJson(body)));
      if ((m = /^\/v1\/agent\/service\/deregister\/(.+)$/.exec(path))) {
        const id = decodeURIComponent(m[1]!);
        if (!this.state.services.has(key(this.agentNode, id))) {
          throw new HttpError(404, `Unknown service ID "${id}". Ensure that the service ID is passed, not the service name.`);
        }
        this.write((idx) => this.deleteService(idx, this.agentNode, id));
        return json(res, 200, null);
      }
      if ((m = /^\/v1\/agent\/check\/(update|pass|warn|fail)\/(.+)$/.exec(path))) {
        const id = decodeURIComponent(m[2]!);
        const parsed = m[1] === "update" ? (parseJson(body) as { Status?: string; Output?: string }) : {};
        const status =
          m[1] === "update" ? parsed.Status : m[1] === "pass" ? "passing" : m[1] === "warn" ? "warning" : "critical";
        if (status !== "passing" && status !== "warning" && status !== "critical") {
          throw new HttpError(400, `Invalid check status: "${String(status)}"`);
        }
        const check = this.state.checks.get(key(this.agentNode, id));
        if (!check) throw new HttpError(404, `Unknown check ID "${id}"`);
        const output = parsed.Output ?? url.searchParams.get("note") ?? check.output;
        this.write((idx) => this.upsertCheck(idx, { ...check, status, output }));
        return json(res, 200, null);
      }
      if ((m = /^\/v1\/agent\/service\/maintenance\/(.+)$/.exec(path))) {
        const id = decodeURIComponent(m[1]!);
        if (!this.state.services.has(key(this.agentNode, id))) throw new HttpError(404, `Unknown service ID "${id}"`);
        this.setMaintenance(`_service_maintenance:${id}`, id, url);
        return json(res, 200, null);
      }
      if (path === "/v1/agent/maintenance") {
        this.setMaintenance("_node_maintenance", "", url);
        return json(res, 200, null);
      }
      throw new HttpError(404, `no handler for ${method} ${path}`);
    } catch (err) {
      if (res.headersSent || res.destroyed) return;
      const status = err instanceof HttpError ? err.status : 500;
      res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8" });
      res.end(err instanceof Error ? err.message : String(err));
    }
  }

  private checkAcl(req: http.IncomingMessage, url: URL): "ok" | "anonymous" {
    if (this.aclToken === undefined) return "ok";
    const header = req.headers["x-consul-token"];
    const bearer = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? "")?.[1];
    const token = (Array.isArray(header) ? header[0] : header) ?? bearer ?? url.searchParams.get("token") ?? "";
    if (token === "") return "anonymous";
    if (token !== this.aclToken) throw new HttpError(403, "ACL not found");
    return "ok";
  }

  private async blockingRead(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    url: URL,
    currentIndex: () => number,
    body: () => unknown,
    acl: "ok" | "anonymous",
    /**
     * What the query watches, when that is narrower than its index: it wakes when
     * this value changes, and otherwise when `currentIndex` passes the one sent.
     */
    watch?: () => number,
  ): Promise<void> {
    const rawIndex = url.searchParams.get("index");
    let minIndex = 0;
    if (rawIndex !== null && rawIndex !== "") {
      if (!/^\d+$/.test(rawIndex)) throw new HttpError(400, "Invalid index");
      minIndex = Number(rawIndex);
    }
    if (minIndex > 0 && currentIndex() <= minIndex) {
      const waitMs = Math.min(parseWait(url.searchParams.get("wait")), 10 * 60_000);
      const jitter = Math.random() * (waitMs / 16);
      const watchedAtStart = watch?.();
      const fired = watch ? () => watch() !== watchedAtStart : () => currentIndex() > minIndex;
      await new Promise<void>((resolve) => {
        const waiter: Waiter = {
          fired,
          answer: () => {
            clearTimeout(timer);
            this.waiters.delete(waiter);
            resolve();
          },
        };
        const timer = setTimeout(waiter.answer, waitMs + jitter);
        this.waiters.add(waiter);
        res.on("close", waiter.answer);
      });
      if (res.destroyed || res.writableEnded) return;
      if (this.faults.apply(req, res)) return;
    }
    const index = Math.max(1, currentIndex());
    const headers: Record<string, string> = {
      "Content-Type": "application/json",
      "X-Consul-Index": String(index),
      "X-Consul-KnownLeader": "true",
      "X-Consul-LastContact": "0",
      "X-Consul-Effective-Consistency": "leader",
    };
    if (acl === "anonymous") headers["X-Consul-Results-Filtered-By-ACLs"] = "true";
    res.writeHead(200, headers);
    res.end(JSON.stringify(body()));
  }

  /** After a write: release the blocked queries whose index moved past theirs. */
  private wakeAll(): void {
    for (const w of [...this.waiters]) {
      if (this.faults.mode !== "none" || w.fired()) w.answer();
    }
  }

  /** Answers every blocked query now, whatever its index. */
  private answerAll(): void {
    for (const w of [...this.waiters]) w.answer();
  }

  private setMaintenance(checkId: string, serviceId: string, url: URL): void {
    const enable = url.searchParams.get("enable");
    if (enable !== "true" && enable !== "false") throw new HttpError(400, "Missing value for enable");
    this.write((idx) => {
      if (enable === "true") {
        this.upsertCheck(idx, {
          node: this.agentNode,
          checkId,
          name: serviceId === "" ? "Node Maintenance Mode" : "Service Maintenance Mode",
          status: "critical",
          notes: url.searchParams.get("reason") ?? "Maintenance mode is enabled for this node/service.",
          serviceId,
        });
      } else {
        this.deleteCheck(idx, this.agentNode, checkId);
      }
    });
  }

  private catalogRegister(body: Record<string, unknown>): boolean {
    const node = str(body.Node, "Node");
    const address = str(body.Address, "Address");
    if (node === "" || address === "") throw new HttpError(400, "Must provide node and address");
    const svc = body.Service === undefined || body.Service === null ? null : obj(body.Service);
    const checks: Record<string, unknown>[] = [];
    if (body.Check) checks.push(obj(body.Check));
    if (Array.isArray(body.Checks)) for (const c of body.Checks) checks.push(obj(c));
    this.write((idx) => {
      if (!body.SkipNodeUpdate || !this.state.nodes.has(node)) {
        const n: { node: string; address: string; id?: string; meta?: Record<string, string>; taggedAddresses?: Record<string, string> } =
          { node, address };
        if (typeof body.ID === "string") n.id = body.ID;
        if (body.NodeMeta) n.meta = strMap(body.NodeMeta);
        if (body.TaggedAddresses) n.taggedAddresses = strMap(body.TaggedAddresses);
        this.upsertNode(idx, n);
      }
      if (svc) this.upsertService(idx, toServiceRec(node, svc));
      for (const c of checks) {
        if (!c) continue;
        const status = (c.Status ?? "critical") as Status;
        if (!["passing", "warning", "critical"].includes(status)) throw new HttpError(400, `Invalid check status "${status}"`);
        const serviceId = typeof c.ServiceID === "string" ? c.ServiceID : "";
        this.upsertCheck(idx, {
          node,
          checkId: str(c.CheckID ?? c.Name, "CheckID"),
          name: typeof c.Name === "string" ? c.Name : str(c.CheckID, "CheckID"),
          status,
          notes: typeof c.Notes === "string" ? c.Notes : "",
          output: typeof c.Output === "string" ? c.Output : "",
          serviceId,
        });
      }
    });
    return true;
  }

  private catalogDeregister(body: Record<string, unknown>): boolean {
    const node = str(body.Node, "Node");
    this.write((idx) => {
      if (typeof body.ServiceID === "string" && body.ServiceID !== "") this.deleteService(idx, node, body.ServiceID);
      else if (typeof body.CheckID === "string" && body.CheckID !== "") this.deleteCheck(idx, node, body.CheckID);
      else this.deleteNode(idx, node);
    });
    return true;
  }

  private agentRegister(body: Record<string, unknown>): null {
    const rec = toServiceRec(this.agentNode, { ...body, Service: body.Name ?? body.Service });
    const checks: Record<string, unknown>[] = [];
    if (body.Check) checks.push(obj(body.Check));
    if (Array.isArray(body.Checks)) for (const c of body.Checks) checks.push(obj(c));
    this.write((idx) => {
      this.upsertService(idx, rec);
      checks.forEach((c, i) => {
        const defaultId = checks.length === 1 ? `service:${rec.id}` : `service:${rec.id}:${i + 1}`;
        this.upsertCheck(idx, {
          node: this.agentNode,
          checkId: typeof c.CheckID === "string" ? c.CheckID : typeof c.ID === "string" ? c.ID : defaultId,
          name: typeof c.Name === "string" ? c.Name : `Service '${rec.service}' check`,
          // TTL checks start critical unless the definition says otherwise.
          status: (typeof c.Status === "string" ? c.Status : "critical") as Status,
          notes: typeof c.Notes === "string" ? c.Notes : "",
          serviceId: rec.id,
        });
      });
    });
    return null;
  }
}

// ------------------------------------------------------------------ helpers

type SerializedState = {
  nodes: [string, NodeRec][];
  services: [string, ServiceRec][];
  checks: [string, CheckRec][];
  index: [string, number][];
};

function serializeState(s: State): SerializedState {
  const c = cloneState(s);
  return { nodes: [...c.nodes], services: [...c.services], checks: [...c.checks], index: [...c.index] };
}

function deserializeState(s: SerializedState): State {
  return { nodes: new Map(s.nodes), services: new Map(s.services), checks: new Map(s.checks), index: new Map(s.index) };
}

function toServiceRec(node: string, svc: Record<string, unknown>): Omit<ServiceRec, "createIndex" | "modifyIndex"> {
  const name = str(svc.Service, "Service");
  if (name === "") throw new HttpError(400, "Missing service name");
  const kind = typeof svc.Kind === "string" ? svc.Kind : "";
  const port = typeof svc.Port === "number" ? svc.Port : 0;
  const proxy = svc.Proxy && typeof svc.Proxy === "object" ? (svc.Proxy as Record<string, unknown>) : null;
  if (kind === "connect-proxy") {
    if (!proxy || typeof proxy.DestinationServiceName !== "string" || proxy.DestinationServiceName === "") {
      throw new HttpError(400, "Proxy.DestinationServiceName must be non-empty for Connect proxy services");
    }
    if (port === 0) throw new HttpError(400, "Port must be non-zero for a Connect proxy service");
  }
  const weights = svc.Weights && typeof svc.Weights === "object" ? (svc.Weights as Record<string, unknown>) : {};
  const locality = svc.Locality && typeof svc.Locality === "object" ? (svc.Locality as Record<string, unknown>) : null;
  return {
    node,
    id: typeof svc.ID === "string" && svc.ID !== "" ? svc.ID : name,
    service: name,
    kind,
    tags: Array.isArray(svc.Tags) ? (svc.Tags as string[]) : [],
    address: typeof svc.Address === "string" ? svc.Address : "",
    port,
    meta: svc.Meta ? strMap(svc.Meta) : {},
    weights: {
      Passing: typeof weights.Passing === "number" ? weights.Passing : 1,
      Warning: typeof weights.Warning === "number" ? weights.Warning : 1,
    },
    proxy: proxy
      ? {
          DestinationServiceName: proxy.DestinationServiceName ?? "",
          DestinationServiceID: proxy.DestinationServiceID ?? "",
          LocalServiceAddress: proxy.LocalServiceAddress ?? "",
          LocalServicePort: proxy.LocalServicePort ?? 0,
          Mode: "",
          MeshGateway: {},
          Expose: {},
        }
      : null,
    locality: locality ? { Region: String(locality.Region ?? ""), Zone: String(locality.Zone ?? "") } : null,
  };
}

function sameExceptIndexes(a: object, b: object): boolean {
  const strip = (o: object) => JSON.stringify({ ...o, createIndex: 0, modifyIndex: 0 });
  return strip(a) === strip(b);
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function str(v: unknown, field: string): string {
  if (typeof v !== "string") throw new HttpError(400, `Request decode failed: ${field} must be a string`);
  return v;
}

function obj(v: unknown): Record<string, unknown> {
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw new HttpError(400, "Request decode failed");
  return v as Record<string, unknown>;
}

function strMap(v: unknown): Record<string, string> {
  const o = obj(v);
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(o)) out[k] = String(val);
  return out;
}

function parseJson(body: string): Record<string, unknown> {
  try {
    return obj(JSON.parse(body));
  } catch (err) {
    if (err instanceof HttpError) throw err;
    throw new HttpError(400, `Request decode failed: ${(err as Error).message}`);
  }
}

/** Consul's `wait`: a Go duration, 5 minutes when absent. */
export function parseWait(raw: string | null): number {
  if (raw === null || raw === "") return 5 * 60_000;
  let total = 0;
  let rest = raw;
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, "µs": 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  while (rest.length > 0) {
    const m = /^(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/.exec(rest);
    if (!m) throw new HttpError(400, `Invalid wait time: time: invalid duration "${raw}"`);
    total += Number(m[1]) * units[m[2]!]!;
    rest = rest.slice(m[0].length);
  }
  return total;
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "Content-Type": "application/json" });
  res.end(JSON.stringify(body));
}
