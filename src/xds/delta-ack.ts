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
  /** The request subscribes to some name ("*" included). */
  readonly subscribes: boolean;
  /** The request unsubscribes from some name. */
  readonly unsubscribes: boolean;
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

/** Every possible answer, allocated once: classifying is on the path of every ACK. */
const INITIAL = Object.freeze({ kind: "initial", latest: false, legacyWildcard: false } as const);
const INITIAL_WILDCARD = Object.freeze({ kind: "initial", latest: false, legacyWildcard: true } as const);
const SUBSCRIPTION = Object.freeze({ kind: "subscription", latest: false, legacyWildcard: false } as const);
const STALE = Object.freeze({ kind: "stale", latest: false, legacyWildcard: false } as const);
const ACK = Object.freeze({ kind: "ack", latest: false, legacyWildcard: false } as const);
const ACK_LATEST = Object.freeze({ kind: "ack", latest: true, legacyWildcard: false } as const);
const NACK = Object.freeze({ kind: "nack", latest: false, legacyWildcard: false } as const);
const NACK_LATEST = Object.freeze({ kind: "nack", latest: true, legacyWildcard: false } as const);

export function classifyDeltaRequest(
  request: DeltaTypeRequest,
  state: DeltaTypeStreamState,
  wildcardCapable: boolean,
): DeltaClassification {
  if (!state.started) {
    const legacyWildcard = wildcardCapable && !request.subscribes && !request.unsubscribes;
    return legacyWildcard ? INITIAL_WILDCARD : INITIAL;
  }
  if (request.responseNonce === "") return SUBSCRIPTION;
  if (!state.outstanding.has(request.responseNonce)) return STALE;
  const latest = request.responseNonce === state.lastNonce;
  if (request.errorMessage !== null) return latest ? NACK_LATEST : NACK;
  return latest ? ACK_LATEST : ACK;
}
