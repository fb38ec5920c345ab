import { SCHEMAS } from "../translate/resource-types.ts";
import { envoyRegistry, validateMessage } from "../validate/pgv.ts";
import type { ResourceGate } from "./cache.ts";

/**
 * The pre-push gate: a resource must pass the validation Envoy itself applies
 * (its protos' validate.rules) before any proxy receives it.
 */
export function resourceGate(registry = envoyRegistry()): ResourceGate {
  return (kind, name, message) =>
    validateMessage(SCHEMAS[kind], message, registry).map(
      (violation) => `${kind} ${JSON.stringify(name)} ${violation.path}: ${violation.message}`,
    );
}
