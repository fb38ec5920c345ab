/**
 * The HTTP side of the Consul source: the `consul` npm client on one shared,
 * bounded keep-alive agent, answering `{ index, body }` or a classified error.
 *
 * Why one agent with `maxSockets`: Consul limits concurrent HTTP connections per
 * client IP (`limits.http_max_conns_per_client`, 200 by default) and refuses the
 * rest. Every request of the source goes through this agent, so however many
 * services are watched and whatever the scheduler does, the source never holds
 * more than `maxSockets` connections to Consul. The watch scheduler keeps the
 * number of requests below that limit so none waits inside the agent.
 */
import { EventEmitter } from "node:events";
import http from "node:http";
import https from "node:https";
import Consul from "consul";

/** Why a request failed; decides the log level and what the operator is told. */
export type ConsulErrorKind =
  /** Connection refused, reset, DNS failure: Consul is not reachable. */
  | "unreachable"
  /** No answer in time. */
  | "timeout"
  /** Consul answered with a non-2xx status. */
  | "http"
  /** A 2xx answer that is not JSON, or JSON of the wrong shape. */
  | "garbage"
  /** We cancelled it (the watch was stopped). */
  | "aborted";

export class ConsulRequestError extends Error {
  readonly kind: ConsulErrorKind;
  readonly status: number | undefined;
  constructor(kind: ConsulErrorKind, message: string, status?: number) {
    super(message);
    this.name = "ConsulRequestError";
    this.kind = kind;
    this.status = status;
  }
}

export interface QueryParams {
  /** Blocking index; 0 for an immediate answer. */
  readonly index: number;
  /** Consul duration for the blocking wait; ignored when index is 0. */
  readonly wait: string;
  /** Client-side timeout of the whole request. */
  readonly timeoutMs: number;
  /** Aborts the request when signalled. */
  readonly signal?: AbortSignal;
}

export interface QueryResult {
  /** The X-Consul-Index header, or null when the answer had none. */
  readonly index: number | null;
  /** The decoded body, unvalidated. */
  readonly body: unknown;
}

export interface ConsulClientOptions {
  readonly baseUrl: URL;
  readonly token: string | undefined;
  readonly datacenter: string | undefined;
  readonly stale: boolean;
  /** Hard ceiling on open connections to Consul. */
  readonly maxSockets: number;
  /**
   * Called when Consul says ACLs hid part of an answer
   * (`X-Consul-Results-Filtered-By-ACLs: true`): the token may lack `service:read`
   * or `node:read` for what the mesh should see.
   */
  readonly onAclFiltered?: (what: string) => void;
}

interface RawResponse {
  readonly statusCode?: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

interface PapiLikeError extends Error {
  readonly code?: string;
  readonly isAbort?: boolean;
  readonly isTimeout?: boolean;
  readonly isResponse?: boolean;
  readonly response?: RawResponse;
}

/** The read endpoints the source uses. */
export class ConsulClient {
  readonly agent: http.Agent;
  private readonly consul: Consul;
  private readonly options: ConsulClientOptions;

  constructor(options: ConsulClientOptions) {
    this.options = options;
    const agentOptions: http.AgentOptions = {
      keepAlive: true,
      maxSockets: options.maxSockets,
      maxTotalSockets: options.maxSockets,
      // Idle sockets beyond what the scheduler uses are closed, not hoarded.
      maxFreeSockets: options.maxSockets,
      scheduling: "lifo",
    };
    this.agent = options.baseUrl.protocol === "https:" ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
    const defaults: Record<string, string | boolean> = {};
    if (options.token !== undefined) defaults.token = options.token;
    if (options.datacenter !== undefined) defaults.dc = options.datacenter;
    if (options.stale) defaults.stale = true;
    // The client's typings lack baseUrl, which it (and papi beneath it) accepts.
    const ctorOptions = { baseUrl: options.baseUrl.toString(), agent: this.agent, defaults };
    this.consul = new Consul(ctorOptions as ConstructorParameters<typeof Consul>[0]);
  }

  /** GET /v1/catalog/services: service name -> tags. */
  catalogServices(params: QueryParams): Promise<QueryResult> {
    return this.call("GET /v1/catalog/services", params, (opts) => this.consul.catalog.service.list(opts as never));
  }

  /** GET /v1/health/service/:name: instances with node and checks. */
  healthService(service: string, params: QueryParams): Promise<QueryResult> {
    return this.call(`GET /v1/health/service/${service}`, params, (opts) =>
      this.consul.health.service({ ...opts, service } as never),
    );
  }

  /** GET /v1/health/state/:state: every check in that state, datacenter-wide. */
  healthState(state: "any" | "passing" | "warning" | "critical", params: QueryParams): Promise<QueryResult> {
    return this.call(`GET /v1/health/state/${state}`, params, (opts) =>
      this.consul.health.state({ ...opts, state } as never),
    );
  }

  destroy(): void {
    this.agent.destroy();
  }

  private async call(
    what: string,
    params: QueryParams,
    run: (opts: Record<string, unknown>) => Promise<unknown>,
  ): Promise<QueryResult> {
    if (params.signal?.aborted) throw new ConsulRequestError("aborted", `${what}: aborted`);
    // The client returns [response, body] when its ctx asks for the response, and
    // aborts the request when the ctx emits "cancel".
    const ctx = Object.assign(new EventEmitter(), { includeResponse: true });
    const onAbort = () => ctx.emit("cancel");
    params.signal?.addEventListener("abort", onAbort, { once: true });
    const opts: Record<string, unknown> = { ctx, timeout: params.timeoutMs };
    if (params.index > 0) {
      opts.index = String(params.index);
      opts.wait = params.wait;
    }
    try {
      const result = (await run(opts)) as [RawResponse, unknown];
      const [res, body] = result;
      if (res.headers["x-consul-results-filtered-by-acls"] === "true") this.options.onAclFiltered?.(what);
      return { index: parseIndex(res.headers["x-consul-index"]), body: decodeBody(body) };
    } catch (err) {
      throw classify(what, err as PapiLikeError, params.signal);
    } finally {
      params.signal?.removeEventListener("abort", onAbort);
    }
  }
}

/** Bodies of an unknown content type arrive as a string or Buffer; try JSON. */
function decodeBody(body: unknown): unknown {
  if (typeof body === "string" || Buffer.isBuffer(body)) {
    const text = body.toString();
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new ConsulRequestError("garbage", `answer is not JSON: ${truncate(text)}`);
    }
  }
  return body;
}

function parseIndex(header: string | string[] | undefined): number | null {
  const raw = Array.isArray(header) ? header[0] : header;
  if (raw === undefined || !/^\d+$/.test(raw.trim())) return null;
  const n = Number(raw.trim());
  return Number.isSafeInteger(n) ? n : null;
}

function classify(what: string, err: PapiLikeError, signal: AbortSignal | undefined): ConsulRequestError {
  if (err instanceof ConsulRequestError) {
    return new ConsulRequestError(err.kind, `${what}: ${err.message}`, err.status);
  }
  if (signal?.aborted || err.isAbort) return new ConsulRequestError("aborted", `${what}: aborted`);
  if (err.isTimeout) return new ConsulRequestError("timeout", `${what}: ${err.message}`);
  const status = err.response?.statusCode;
  if (err.isResponse || (status !== undefined && (status < 200 || status > 299))) {
    return new ConsulRequestError("http", `${what}: HTTP ${status ?? "?"} ${truncate(err.message)}`, status);
  }
  if (status !== undefined) {
    // A 2xx whose body failed to decode (papi's JSON codec threw).
    return new ConsulRequestError("garbage", `${what}: ${truncate(err.message)}`, status);
  }
  if (err.code !== undefined) return new ConsulRequestError("unreachable", `${what}: ${err.message}`);
  return new ConsulRequestError("unreachable", `${what}: ${err.message || String(err)}`);
}

function truncate(text: string, max = 120): string {
  const oneLine = text.replace(/\s+/g, " ").trim();
  return oneLine.length > max ? `${oneLine.slice(0, max)}...` : oneLine;
}
