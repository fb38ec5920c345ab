/**
 * Fault injection and connection accounting shared by the Consul test server and
 * the fault proxy: answer garbage, wrong-shape JSON, HTTP 500, reset connections,
 * or stop listening altogether; count open connections and requests in flight.
 */
import { EventEmitter } from "node:events";
import type http from "node:http";
import type { Socket } from "node:net";

export type FaultMode =
  /** Answer normally. */
  | "none"
  /** 200, `Content-Type: application/json`, a body that is not JSON. */
  | "garbage"
  /** 200, valid JSON of the wrong shape. */
  | "wrong-shape"
  /** 500 with Consul's text for a lost leader. */
  | "error500"
  /** Destroy the connection without an answer. */
  | "reset";

export class Faults extends EventEmitter {
  private current: FaultMode = "none";
  /** Only requests whose path matches are affected (default: all reads). */
  private match: RegExp = /^\/v1\/(catalog|health)\//;
  private indexHeader = 1;

  get mode(): FaultMode {
    return this.current;
  }

  /** Changes the mode; requests held open (blocking queries) see it at once. */
  set(mode: FaultMode, match?: RegExp): void {
    this.current = mode;
    if (match) this.match = match;
    else if (mode === "none") this.match = /^\/v1\/(catalog|health)\//;
    this.emit("change", mode);
  }

  affects(req: http.IncomingMessage): boolean {
    return this.current !== "none" && this.match.test(req.url ?? "");
  }

  /** Answers `res` with the current fault; false when no fault applies. */
  apply(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    if (!this.affects(req)) return false;
    // A plausible index, so only the body/status is wrong.
    this.indexHeader += 1;
    switch (this.current) {
      case "garbage":
        res.writeHead(200, { "Content-Type": "application/json", "X-Consul-Index": String(this.indexHeader) });
        res.end('{"Node": [ this is not json');
        return true;
      case "wrong-shape":
        res.writeHead(200, { "Content-Type": "application/json", "X-Consul-Index": String(this.indexHeader) });
        res.end(JSON.stringify(req.url?.startsWith("/v1/catalog/") ? ["not", "a", "map"] : { unexpected: true }));
        return true;
      case "error500":
        res.writeHead(500, { "Content-Type": "text/plain; charset=utf-8" });
        res.end("No cluster leader");
        return true;
      case "reset":
        req.socket.destroy();
        return true;
      default:
        return false;
    }
  }
}

/** Counts TCP connections and requests of an http.Server. */
export class ConnectionStats {
  private readonly sockets = new Set<Socket>();
  private peakConnections = 0;
  private inFlight = 0;
  private peakInFlight = 0;
  private total = 0;

  attach(server: http.Server): void {
    server.on("connection", (socket: Socket) => {
      this.sockets.add(socket);
      this.peakConnections = Math.max(this.peakConnections, this.sockets.size);
      socket.on("close", () => this.sockets.delete(socket));
    });
    server.on("request", (_req: http.IncomingMessage, res: http.ServerResponse) => {
      this.total += 1;
      this.inFlight += 1;
      this.peakInFlight = Math.max(this.peakInFlight, this.inFlight);
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        this.inFlight -= 1;
      };
      res.on("finish", finish);
      res.on("close", finish);
    });
  }

  /** Connections open now. */
  get connections(): number {
    return this.sockets.size;
  }

  /** Most connections open at once since the last reset. */
  get maxConnections(): number {
    return this.peakConnections;
  }

  get requestsInFlight(): number {
    return this.inFlight;
  }

  get maxRequestsInFlight(): number {
    return this.peakInFlight;
  }

  get requests(): number {
    return this.total;
  }

  reset(): void {
    this.peakConnections = this.sockets.size;
    this.peakInFlight = this.inFlight;
    this.total = 0;
  }

  destroyAll(): void {
    for (const s of this.sockets) s.destroy();
  }
}
