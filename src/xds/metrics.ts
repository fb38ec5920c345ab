import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** Prometheus metrics of the xDS server; one instance per server, on its own registry. */
export class XdsMetrics {
  readonly registry: Registry;
  readonly connectedProxies: Gauge<"kind" | "protocol">;
  readonly responses: Counter<"type">;
  readonly responseBytes: Counter<"type">;
  readonly nacks: Counter<"type">;
  readonly staleRequests: Counter<"type">;
  readonly badRequests: Counter<"reason">;
  readonly snapshotBuilds: Counter<string>;
  readonly pushDuration: Histogram<string>;

  /** Responses counted on the push path as plain numbers, added to the counters when scraped. */
  private readonly pending = new Map<string, { responses: number; bytes: number }>();

  /** One response of `type` sent: cheap enough for the push path (labels are resolved at scrape time). */
  recordResponse(type: string, bytes: number): void {
    let counts = this.pending.get(type);
    if (!counts) this.pending.set(type, (counts = { responses: 0, bytes: 0 }));
    counts.responses++;
    counts.bytes += bytes;
  }

  constructor(registry = new Registry()) {
    this.registry = registry;
    this.connectedProxies = new Gauge({
      name: "signalbox_xds_connected_proxies",
      help: "xDS streams currently open",
      labelNames: ["kind", "protocol"],
      registers: [registry],
    });
    const pending = this.pending;
    this.responses = new Counter({
      name: "signalbox_xds_responses_total",
      help: "Discovery responses sent",
      labelNames: ["type"],
      registers: [registry],
      collect() {
        for (const [type, counts] of pending) {
          if (counts.responses === 0) continue;
          this.inc({ type }, counts.responses);
          counts.responses = 0;
        }
      },
    });
    this.responseBytes = new Counter({
      name: "signalbox_xds_response_bytes_total",
      help: "Bytes of discovery responses sent",
      labelNames: ["type"],
      registers: [registry],
      collect() {
        for (const [type, counts] of pending) {
          if (counts.bytes === 0) continue;
          this.inc({ type }, counts.bytes);
          counts.bytes = 0;
        }
      },
    });
    this.nacks = new Counter({
      name: "signalbox_xds_nacks_total",
      help: "Responses rejected by proxies",
      labelNames: ["type"],
      registers: [registry],
    });
    this.staleRequests = new Counter({
      name: "signalbox_xds_stale_requests_total",
      help: "Requests answering a superseded nonce (ignored)",
      labelNames: ["type"],
      registers: [registry],
    });
    this.badRequests = new Counter({
      name: "signalbox_xds_bad_requests_total",
      help: "Requests refused as malformed or unsupported",
      labelNames: ["reason"],
      registers: [registry],
    });
    this.snapshotBuilds = new Counter({
      name: "signalbox_snapshots_total",
      help: "Mesh snapshots built and handed to the cache",
      registers: [registry],
    });
    this.pushDuration = new Histogram({
      name: "signalbox_push_duration_seconds",
      help: "Time to bring every connected stream up to date after a snapshot",
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    });
  }
}
