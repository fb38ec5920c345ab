/**
 * The PostgreSQL source: the mesh schema (migrations), and PostgresStore, which
 * serves the mesh tables as a RegistrySource and a RuleSource.
 */
export { PostgresStore, CHANGE_CHANNEL, type PostgresStoreMetrics } from "./store.ts";
export type { PostgresStoreOptions, PostgresBackend, StoreLogger } from "./options.ts";
export { migrate, type MigrationResult } from "./migrate.ts";
export { migrations, type Migration } from "./migrations/index.ts";
export { parseRegistry, type ParsedRegistry } from "./parse-registry.ts";
export { parseRules, IMPLICIT_DESTINATION_WEIGHT } from "./parse-rules.ts";
export { desiredRuleStatus, type RuleStatusRow } from "./rule-status.ts";
export type * from "./rows.ts";
