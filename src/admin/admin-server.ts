import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";

/**
 * The admin HTTP API. Wiring only: every answer comes from a provider function.
 *   GET /healthz         the process is up
 *   GET /readyz          a snapshot is being served (200), with source health;
 *                        503 until the first snapshot
 *   GET /metrics         Prometheus text format
 *   GET /v1/proxies      connected proxies, per-type versions, ACK/NACK state, last error
 *   GET /v1/rules/rejected  rules refused and why
 *   GET /v1/resources/invalid  generated resources withheld by field validation
 */
export interface AdminProviders {
  readonly ready: () => boolean;
  readonly sources: () => ReadonlyArray<{ name: string; ready: boolean; degraded: boolean; lastError: string | null; revision: string }>;
  readonly proxies: () => unknown;
  readonly rejectedRules: () => unknown;
  readonly invalidResources: () => unknown;
  readonly metrics: Registry;
}

function json(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { "content-type": "application/json" });
  response.end(JSON.stringify(body, null, 2));
}

export class AdminServer {
  private readonly server: Server;

  constructor(private readonly providers: AdminProviders) {
    this.server = createServer((request, response) => {
      this.handle(request, response).catch((error: unknown) => json(response, 500, { error: String(error) }));
    });
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, host, () => resolve((this.server.address() as AddressInfo).port));
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = new URL(request.url ?? "/", "http://admin").pathname;
    if (request.method !== "GET") return json(response, 405, { error: "only GET is supported" });
    switch (path) {
      case "/healthz":
        return json(response, 200, { status: "ok" });
      case "/readyz": {
        const sources = this.providers.sources();
        const ready = this.providers.ready();
        const degraded = sources.some((source) => source.degraded);
        // A degraded source still serves its last known state, so the server stays
        // ready (failing readiness everywhere at once would only make things worse).
        return json(response, ready ? 200 : 503, { status: ready ? (degraded ? "degraded" : "ready") : "starting", sources });
      }
      case "/metrics":
        response.writeHead(200, { "content-type": this.providers.metrics.contentType });
        response.end(await this.providers.metrics.metrics());
        return;
      case "/v1/proxies":
        return json(response, 200, this.providers.proxies());
      case "/v1/rules/rejected":
        return json(response, 200, this.providers.rejectedRules());
      case "/v1/resources/invalid":
        return json(response, 200, this.providers.invalidResources());
      default:
        return json(response, 404, { error: `no such endpoint ${path}` });
    }
  }
}
