/**
 * Classifying an incremental (delta) DiscoveryRequest for one type. Pure, so
 * every protocol case is a table test.
 *
 *   initial       first request for the type on this stream
 *   subscription  a spontaneous request (no nonce) that changes the subscription
 *   ack           the client applied a response we sent (`latest`: our newest one)
 *   nack          the client rejected a response we sent (error_detail set)
 *   stale         names a nonce we do not know (never sent, or long superseded)
 *
 * Unlike state of the world, subscription changes in a request are always
 * honoured whatever its nonce (the xDS spec: the nonce correlates an ACK/NACK,
 * it must not be used to reject requests). And since every delta response
 * carries different resources, an ACK or NACK of an earlier, still outstanding
 * response is meaningful: a NACK of it means the client refused those resources.
 */
export type DeltaRequestClass = "initial" | "subscription" | "ack" | "nack" | "stale";

export interface DeltaTypeRequest {
  readonly responseNonce: string;
  readonly errorMessage: string | null;
  readonly subscribe: readonly string[];
  readonly unsubscribe: readonly string[];
}

export interface DeltaTypeStreamState {
  /** Has the client sent a request for this type on this stream? */
  readonly started: boolean;
  /** Nonce of our newest response for this type, null before the first. */
  readonly lastNonce: string | null;
  /** Nonces of responses sent and not yet answered (the newest included). */
  readonly outstanding: { has(nonce: string): boolean };
}

export interface DeltaClassification {
  readonly kind: DeltaRequestClass;
  /** For ack/nack: the request answers our newest response. */
  readonly latest: boolean;
  /**
   * Legacy wildcard: the first request of a wildcard-capable type (clusters,
   * listeners) subscribes and unsubscribes nothing. Explicit "*" is handled as a
   * name by the stream.
   */
  readonly legacyWildcard: boolean;
}

export function classifyDeltaRequest(
  request: DeltaTypeRequest,
  state: DeltaTypeStreamState,
  wildcardCapable: boolean,
): DeltaClassification {
  if (!state.started) {
    const legacyWildcard = wildcardCapable && request.subscribe.length === 0 && request.unsubscribe.length === 0;
    return { kind: "initial", latest: false, legacyWildcard };
  }
  if (request.responseNonce === "") return { kind: "subscription", latest: false, legacyWildcard: false };
  if (!state.outstanding.has(request.responseNonce)) return { kind: "stale", latest: false, legacyWildcard: false };
  const latest = request.responseNonce === state.lastNonce;
  return { kind: request.errorMessage !== null ? "nack" : "ack", latest, legacyWildcard: false };
}
