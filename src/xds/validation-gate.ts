import { VirtualHostSchema } from "../gen/envoy/config/route/v3/route_components_pb.ts";
import { SCHEMAS } from "../translate/resource-types.ts";
import { envoyRegistry, validateMessage } from "../validate/pgv.ts";
import type { ResourceGate } from "./cache.ts";

/**
 * Messages translation shares between resources, checked once each: a virtual
 * host sits in the route configuration of every caller in scope of its
 * service. Whole resources need no entry (the cache validates each version
 * once), nor do endpoints: one sits in at most a few assignments, and the
 * 100,000 entries of a large mesh would cost the garbage collector more than
 * walking them again saves.
 */
const SHARED_TYPES: ReadonlySet<string> = new Set([VirtualHostSchema.typeName]);

/**
 * The pre-push gate: a resource must pass the validation Envoy itself applies
 * (its protos' validate.rules) before any proxy receives it.
 */
export function resourceGate(registry = envoyRegistry()): ResourceGate {
  return (kind, name, message) =>
    validateMessage(SCHEMAS[kind], message, registry, SHARED_TYPES).map(
      (violation) => `${kind} ${JSON.stringify(name)} ${violation.path}: ${violation.message}`,
    );
}
