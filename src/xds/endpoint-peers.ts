/**
 * A proxy's delta streams that serve endpoints but not clusters, by proxy
 * (node) id, so the proxy's CDS stream can tell them which clusters it updated.
 *
 * Envoy re-creates an updated cluster and waits for its endpoints. Over ADS
 * the stream that sent the cluster resends them (delta-stream.ts). A proxy
 * whose CDS and EDS are separate delta streams (the single-type services)
 * does not ask for them again, as it still watches the names, and its EDS
 * stream does not see the update: without this, the cluster would wait for
 * Envoy's initial fetch timeout. Streams of one server process only: a proxy
 * whose CDS and EDS streams reach different replicas is not helped.
 */
export interface EndpointPeer {
  /** Clusters of these names were updated on the proxy's CDS stream: resend their endpoints. */
  resendEndpointsOf(clusters: readonly string[]): void;
}

export class EndpointPeers {
  private readonly byProxy = new Map<string, Set<EndpointPeer>>();

  add(proxyId: string, peer: EndpointPeer): void {
    let peers = this.byProxy.get(proxyId);
    if (!peers) this.byProxy.set(proxyId, (peers = new Set()));
    peers.add(peer);
  }

  remove(proxyId: string, peer: EndpointPeer): void {
    const peers = this.byProxy.get(proxyId);
    if (peers?.delete(peer) && peers.size === 0) this.byProxy.delete(proxyId);
  }

  /** Proxies with such streams open. */
  get size(): number {
    return this.byProxy.size;
  }

  /** The proxy's CDS stream updated `clusters` (it has just written them). */
  clustersUpdated(proxyId: string, clusters: readonly string[]): void {
    const peers = this.byProxy.get(proxyId);
    if (peers) for (const peer of peers) peer.resendEndpointsOf(clusters);
  }
}
