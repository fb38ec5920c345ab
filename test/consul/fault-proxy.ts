/**
 * An HTTP proxy between the source under test and a Consul (the test server or a
 * real one). It lets one suite exercise failure behaviour against either:
 * - faults: garbage, wrong-shape JSON, HTTP 500, connection resets, and "down"
 *   (the listening socket closed: connection refused);
 * - index epochs: `rewindIndex()` makes every X-Consul-Index the source sees drop
 *   by a large amount, and translates the source's `?index=` back, exactly as if
 *   Consul's index had gone backwards (a restore, a new cluster) while the data
 *   stayed the same. An index from the old epoch (above the offset) is passed on
 *   unchanged, so a client that does not reset it blocks for its whole wait;
 * - accounting: the connections the source holds open, current and peak.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { ConnectionStats, Faults } from "./faults.ts";

/** Indexes of the first epoch are shown this much higher than they are. */
const epochOffset = 1_000_000_000;

export class FaultProxy {
  readonly faults = new Faults();
  readonly stats = new ConnectionStats();
  private readonly server: http.Server;
  private readonly upstream: URL;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
  private offset = epochOffset;
  private port = 0;
  private listening = false;
  private readonly inFlight = new Set<{ req: http.IncomingMessage; res: http.ServerResponse; abort: () => void }>();

  private constructor(upstream: string) {
    this.upstream = new URL(upstream);
    this.server = http.createServer((req, res) => this.forward(req, res));
    this.server.keepAliveTimeout = 65_000;
    this.stats.attach(this.server);
    this.faults.on("change", () => {
      // Held requests (blocking queries) get the fault now, not when Consul answers.
      for (const f of [...this.inFlight]) {
        if (this.faults.affects(f.req)) {
          f.abort();
          this.faults.apply(f.req, f.res);
        }
      }
    });
  }

  static async start(upstream: string): Promise<FaultProxy> {
    const p = new FaultProxy(upstream);
    await p.up();
    return p;
  }

  get address(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Stops listening and drops every connection: the source sees ECONNREFUSED. */
  async down(): Promise<void> {
    if (!this.listening) return;
    this.listening = false;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const f of this.inFlight) f.abort();
    this.server.closeAllConnections();
    this.stats.destroyAll();
    await closed;
  }

  async up(): Promise<void> {
    if (this.listening) return;
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.port, "127.0.0.1", () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    this.port = (this.server.address() as AddressInfo).port;
    this.listening = true;
  }

  /** From now on indexes are shown as they are: far below what was shown before. */
  rewindIndex(): void {
    this.offset = 0;
  }

  async close(): Promise<void> {
    await this.down();
    this.agent.destroy();
  }

  private forward(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (this.faults.apply(req, res)) return;
    const url = new URL(req.url ?? "/", this.upstream);
    const index = url.searchParams.get("index");
    if (index !== null && /^\d+$/.test(index)) {
      const n = Number(index);
      // Translate back an index of the current epoch; pass older ones unchanged.
      if (n > this.offset) url.searchParams.set("index", String(n - this.offset));
    }
    const headers = { ...req.headers, host: this.upstream.host };
    const upstreamReq = http.request(url, { method: req.method, headers, agent: this.agent });
    const entry = {
      req,
      res,
      abort: () => {
        upstreamReq.destroy();
        this.inFlight.delete(entry);
      },
    };
    this.inFlight.add(entry);
    res.on("close", () => {
      if (this.inFlight.has(entry)) entry.abort();
    });
    upstreamReq.on("response", (up) => {
      this.inFlight.delete(entry);
      if (res.headersSent || res.destroyed) {
        up.resume();
        return;
      }
      const out: http.OutgoingHttpHeaders = { ...up.headers };
      const idx = up.headers["x-consul-index"];
      if (typeof idx === "string" && /^\d+$/.test(idx)) out["x-consul-index"] = String(Number(idx) + this.offset);
      res.writeHead(up.statusCode ?? 502, out);
      up.pipe(res);
    });
    upstreamReq.on("error", () => {
      this.inFlight.delete(entry);
      if (!res.headersSent && !res.destroyed) {
        res.writeHead(502, { "Content-Type": "text/plain" });
        res.end("proxy: upstream failed");
      }
    });
    req.pipe(upstreamReq);
  }
}
