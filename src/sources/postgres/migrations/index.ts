/**
 * Every schema migration, in order. Versions are dense and never reused: a
 * released migration is never edited, a change is a new file here.
 */
import { migration0001 } from "./0001_mesh_schema.ts";
import { migration0002 } from "./0002_service_dependencies.ts";
import { migration0003 } from "./0003_cluster_policies.ts";
import { migration0004 } from "./0004_route_policies.ts";
import { migration0005 } from "./0005_registry_changes.ts";
import { migration0006 } from "./0006_table_revisions.ts";
import { migration0007 } from "./0007_route_changes.ts";

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export const migrations: readonly Migration[] = [migration0001, migration0002, migration0003, migration0004, migration0005, migration0006, migration0007];
