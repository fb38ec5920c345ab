// Real gRPC echo backends for client tests.
//
// Each backend is a @grpc/grpc-js server on 127.0.0.1:<free port> serving one
// generic unary method, /signalbox.test.Echo/Whoami, with identity (raw bytes)
// serializers. The reply is UTF-8 JSON: { "backend": name, "metadata": {...} },
// where metadata is the request metadata the backend saw (ASCII values only;
// binary "-bin" headers are reported base64-encoded).
import * as grpc from "@grpc/grpc-js";

export const ECHO_SERVICE = "signalbox.test.Echo";
export const WHOAMI_METHOD = "Whoami";
export const WHOAMI_PATH = `/${ECHO_SERVICE}/${WHOAMI_METHOD}`;

export interface WhoamiReply {
  backend: string;
  metadata: Record<string, string>;
}

export interface Backend {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** "127.0.0.1:port" */
  readonly address: string;
  /** Requests received since start (or the last reset()), including failed ones. */
  readonly requests: number;
  /** Metadata of the most recent request, if any. */
  readonly lastMetadata: Record<string, string> | undefined;
  /**
   * Answer a fraction (default 1 = all) of requests with this status instead of a reply.
   * Pass null to stop failing. Fractional failure is deterministic: it fails
   * floor(n * fraction) of every n requests in an even pattern.
   */
  setFailing(code: grpc.status | null, fraction?: number): void;
  /** Delay every reply by this many milliseconds (0 = none). */
  setDelay(ms: number): void;
  /** Zero the request counter and forget the last metadata. */
  reset(): void;
  stop(): Promise<void>;
}

const identity = (b: Buffer): Buffer => b;

const echoServiceDefinition: grpc.ServiceDefinition = {
  [WHOAMI_METHOD]: {
    path: WHOAMI_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

function metadataToRecord(md: grpc.Metadata): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(md.getMap())) {
    out[key] = Buffer.isBuffer(value) ? value.toString("base64") : String(value);
  }
  return out;
}

async function startBackend(name: string): Promise<Backend> {
  const server = new grpc.Server();
  let requests = 0;
  let lastMetadata: Record<string, string> | undefined;
  let failCode: grpc.status | null = null;
  let failFraction = 1;
  let failAcc = 0;
  let delayMs = 0;

  const shouldFail = (): boolean => {
    if (failCode === null) return false;
    if (failFraction >= 1) return true;
    if (failFraction <= 0) return false;
    failAcc += failFraction;
    if (failAcc >= 1) {
      failAcc -= 1;
      return true;
    }
    return false;
  };

  const handler: grpc.handleUnaryCall<Buffer, Buffer> = (call, callback) => {
    requests += 1;
    const metadata = metadataToRecord(call.metadata);
    lastMetadata = metadata;
    const respond = (): void => {
      if (shouldFail()) {
        const code = failCode ?? grpc.status.UNAVAILABLE;
        callback({ code, details: `backend ${name} configured to fail with ${grpc.status[code]}` });
        return;
      }
      const reply: WhoamiReply = { backend: name, metadata };
      callback(null, Buffer.from(JSON.stringify(reply), "utf8"));
    };
    if (delayMs > 0) setTimeout(respond, delayMs);
    else respond();
  };

  server.addService(echoServiceDefinition, { [WHOAMI_METHOD]: handler });
  const host = "127.0.0.1";
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${host}:0`, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    );
  });

  return {
    name,
    host,
    port,
    address: `${host}:${port}`,
    get requests() {
      return requests;
    },
    get lastMetadata() {
      return lastMetadata;
    },
    setFailing(code, fraction = 1) {
      failCode = code;
      failFraction = fraction;
      failAcc = 0;
    },
    setDelay(ms) {
      delayMs = ms;
    },
    reset() {
      requests = 0;
      lastMetadata = undefined;
    },
    stop() {
      return new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 1000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}

/** Start one echo backend per name, each on its own free port of 127.0.0.1. */
export async function startBackends(names: string[]): Promise<Backend[]> {
  return Promise.all(names.map((n) => startBackend(n)));
}

/** Stop all backends; never throws. */
export async function stopBackends(backends: Backend[]): Promise<void> {
  await Promise.all(backends.map((b) => b.stop().catch(() => undefined)));
}
