import { expect } from "vitest";

/**
 * Docs show statements the schema refuses in ```sql refused blocks, each with
 * a comment naming the constraint (`constraint "name"`). These helpers let a
 * docs test check that every such statement still fails, with that constraint.
 */

/** The statements of refused blocks' bodies, one each; pieces that are only comments dropped. */
export function refusedStatements(bodies: readonly string[]): string[] {
  return bodies
    .flatMap((body) => body.split(/;\s*\n/))
    .map((statement) => statement.trim())
    .filter((statement) => statement.replace(/--.*$/gm, "").trim() !== "");
}

/** Runs each statement with `query`, expecting it to fail with the constraint its comment names. */
export async function expectRefusedAsDocumented(statements: readonly string[], query: (sql: string) => Promise<unknown>): Promise<void> {
  for (const statement of statements) {
    const constraint = /constraint\s+"([a-z_]+)"/.exec(statement)?.[1];
    expect(constraint, `comment naming the constraint in: ${statement}`).toBeDefined();
    const error = await query(statement).then(
      () => null,
      (err: { constraint?: string }) => err,
    );
    expect(error?.constraint, statement).toBe(constraint);
  }
}
