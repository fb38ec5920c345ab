/**
 * The identity of a connected xDS client, parsed from the Node it sends.
 */
export type ProxyKind = "envoy" | "grpc";

export interface Proxy {
  readonly id: string;
  /** The node cluster: the name of the service this proxy belongs to ("" if none). */
  readonly service: string;
  readonly kind: ProxyKind;
  /** Inbound listener port for a sidecar; null when it takes no inbound traffic. */
  readonly inboundPort: number | null;
  /** The local application's port that inbound traffic is forwarded to. */
  readonly appPort: number | null;
  /** Port of the outbound HTTP listener the app sends plain HTTP to. */
  readonly outboundPort: number;
  readonly userAgent: string;
}

export const DEFAULT_OUTBOUND_PORT = 15001;
