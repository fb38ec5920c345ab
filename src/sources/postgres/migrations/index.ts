/**
 * Every schema migration, in order. Versions are dense and never reused: a
 * released migration is never edited, a change is a new file here.
 */
import { migration0001 } from "./0001_mesh_schema.ts";

export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly sql: string;
}

export const migrations: readonly Migration[] = [migration0001];
