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
  readonly versionInfo: string;
  readonly responseNonce: string;
  readonly resourceNames: readonly string[];
  readonly errorMessage: string | null;
}

export interface TypeStreamState {
  /** Nonce of the last response sent for this type, null before the first. */
  readonly lastNonce: string | null;
  /** Names of the previous request, null before the first request. */
  readonly subscribed: readonly string[] | null;
}

export interface Classification {
  readonly kind: RequestClass;
  readonly subscriptionChanged: boolean;
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const set = new Set(a);
  return b.every((name) => set.has(name));
}

export function classifyRequest(request: TypeRequest, state: TypeStreamState): Classification {
  const subscriptionChanged = state.subscribed === null || !sameNames(state.subscribed, request.resourceNames);
  if (request.responseNonce === "" || state.lastNonce === null) {
    return { kind: "initial", subscriptionChanged };
  }
  if (request.responseNonce !== state.lastNonce) return { kind: "stale", subscriptionChanged };
  if (request.errorMessage !== null) return { kind: "nack", subscriptionChanged };
  return { kind: "ack", subscriptionChanged };
}
