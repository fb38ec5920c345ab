/**
 * Where services are: the registry half of the mesh model. Plain immutable data,
 * filled by a registry source (the database or Consul) and read by translation.
 */

/** Health as the mesh sees it; mapped one-to-one onto Envoy's HealthStatus. */
export type InstanceHealth = "healthy" | "unhealthy" | "draining" | "unknown";

/** How a service speaks; decides listener filters and upstream protocol options. */
export type ServiceProtocol = "http" | "http2" | "grpc" | "tcp";

export interface Instance {
  /** Stable id, unique within the mesh (a database id or a Consul service id). */
  readonly id: string;
  readonly service: string;
  readonly address: string;
  /** The port the application itself listens on. */
  readonly port: number;
  /**
   * The port of the instance's sidecar inbound listener, when it runs one. Mesh
   * traffic then goes to this port and the sidecar forwards to `port` locally.
   */
  readonly meshPort: number | null;
  /** Tags become labels with the value "" so selectors can test presence. */
  readonly labels: Readonly<Record<string, string>>;
  readonly region: string;
  readonly zone: string;
  /** Load-balancing weight, 1..128 as Envoy allows. */
  readonly weight: number;
  readonly health: InstanceHealth;
}

export interface Service {
  readonly name: string;
  readonly protocol: ServiceProtocol;
  /** The port clients use in the Host header (`name:port`); 80 when undeclared. */
  readonly port: number;
  /** Sorted by id so translation is deterministic. */
  readonly instances: readonly Instance[];
}

/** Everything a registry source knows, as one value. */
export interface RegistryState {
  /** Keyed by service name. */
  readonly services: ReadonlyMap<string, Service>;
}

export const emptyRegistry: RegistryState = { services: new Map() };
