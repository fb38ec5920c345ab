/**
 * Classifying a state-of-the-world DiscoveryRequest against what the stream last
 * sent for that type. Pure, so every protocol case is a table test.
 *
 *   initial      first request for the type on this stream (no nonce yet)
 *   ack          the client applied our latest response
 *   nack         the client rejected our latest response (error_detail set)
 *   stale        answers a response we have since superseded: ignore it
 *
 * Independently, `subscriptionChanged` says the requested names differ from the
 * last request's, which needs a response even when the request is an ACK.
 */
export type RequestClass = "initial" | "ack" | "nack" | "stale";

export interface TypeRequest {
  /** Not used to classify (an ACK names its nonce); kept for callers' convenience. */
  readonly versionInfo?: string;
  readonly responseNonce: string;
  readonly resourceNames: readonly string[];
  readonly errorMessage: string | null;
}

export interface TypeStreamState {
  /** Nonce of the last response sent for this type, null before the first. */
  readonly lastNonce: string | null;
  /** The names of the previous request, null before the first request. */
  readonly subscription: { readonly names: readonly string[] } | null;
}

export interface Classification {
  readonly kind: RequestClass;
  readonly subscriptionChanged: boolean;
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  if (a.length === 1) return a[0] === b[0];
  const set = new Set(a);
  return b.every((name) => set.has(name));
}

/** Every possible answer, allocated once: classifying is on the path of every ACK. */
const CLASSIFICATIONS: Readonly<Record<RequestClass, readonly [Classification, Classification]>> = {
  initial: [Object.freeze({ kind: "initial", subscriptionChanged: false }), Object.freeze({ kind: "initial", subscriptionChanged: true })],
  ack: [Object.freeze({ kind: "ack", subscriptionChanged: false }), Object.freeze({ kind: "ack", subscriptionChanged: true })],
  nack: [Object.freeze({ kind: "nack", subscriptionChanged: false }), Object.freeze({ kind: "nack", subscriptionChanged: true })],
  stale: [Object.freeze({ kind: "stale", subscriptionChanged: false }), Object.freeze({ kind: "stale", subscriptionChanged: true })],
};

export function classifyRequest(request: TypeRequest, state: TypeStreamState): Classification {
  const subscriptionChanged = state.subscription === null || !sameNames(state.subscription.names, request.resourceNames);
  const changed = subscriptionChanged ? 1 : 0;
  if (request.responseNonce === "" || state.lastNonce === null) return CLASSIFICATIONS.initial[changed];
  if (request.responseNonce !== state.lastNonce) return CLASSIFICATIONS.stale[changed];
  if (request.errorMessage !== null) return CLASSIFICATIONS.nack[changed];
  return CLASSIFICATIONS.ack[changed];
}
