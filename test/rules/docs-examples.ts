/**
 * Keeps a rules document honest: runs its ```sql examples in order against a
 * real Signalbox on a fresh database, checks every rule is accepted, and checks
 * that each ```json block is exactly the configuration Signalbox then produces
 * for the proxy and path its info string names:
 *
 *   ```json <proxy> <kind> <resource name> [<key or array element name or index>...]
 *
 * (array elements are found by `name`; a proxyless route's "#digest" suffix is
 * ignored). UPDATE_DOCS=1 rewrites the json blocks instead; review the diff.
 * ```sql refused blocks must fail with the constraint their comment names.
 */
import { readFile, writeFile } from "node:fs/promises";
import { isDeepStrictEqual } from "node:util";
import { toJson } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Proxy } from "../../src/model/proxy.ts";
import { RESOURCE_KINDS, SCHEMAS, type ResourceKind } from "../../src/translate/resource-types.ts";
import { translate } from "../../src/translate/translate.ts";
import { envoyRegistry } from "../../src/validate/pgv.ts";
import { startMesh, type E2eMesh } from "../e2e/harness.ts";
import { expectRefusedAsDocumented, refusedStatements } from "../support/refused-sql.ts";

const update = process.env.UPDATE_DOCS === "1";
const registry = envoyRegistry();

export interface DocsExamplesOptions {
  readonly doc: URL;
  /** Proxies the json blocks may name. */
  readonly proxies: Record<string, Proxy>;
  /** Status views whose rows must all be accepted after the examples ran. */
  readonly statusViews: readonly string[];
}

interface Block {
  readonly kind: "sql" | "refused" | "json";
  readonly info: string;
  readonly body: string;
  /** Offsets of the body in the document, for UPDATE_DOCS. */
  readonly start: number;
  readonly end: number;
}

function blocks(doc: string): Block[] {
  const out: Block[] = [];
  for (const m of doc.matchAll(/```(sql refused|sql|json [^\n]*)\n([\s\S]*?)```/g)) {
    const info = m[1] as string;
    const start = (m.index ?? 0) + 3 + info.length + 1;
    out.push({
      kind: info === "sql" ? "sql" : info === "sql refused" ? "refused" : "json",
      info,
      body: m[2] as string,
      start,
      end: start + (m[2] as string).length,
    });
  }
  return out;
}

/** Follows `path` into a rendered resource: object keys, array elements by name (or index). */
function select(node: unknown, path: readonly string[]): unknown {
  let current = node;
  for (const segment of path) {
    if (Array.isArray(current)) {
      current = /^\d+$/.test(segment)
        ? current[Number(segment)]
        : current.find((item: { name?: string }) => item?.name === segment || item?.name?.startsWith(`${segment}#`));
    } else if (current && typeof current === "object") {
      current = (current as Record<string, unknown>)[segment];
    } else {
      return undefined;
    }
  }
  return current;
}

export function docsExamplesSuite(options: DocsExamplesOptions): void {
    describe(`${options.doc.pathname.split("/").slice(-2).join("/")} examples`, () => {
    let mesh: E2eMesh;
    let doc: string;

    beforeAll(async () => {
      doc = await readFile(options.doc, "utf8");
      mesh = await startMesh();
    });

    afterAll(async () => {
      await mesh?.close();
    });

    /** Every enabled row has been looked at; none was rejected. */
    async function settled(): Promise<void> {
      const deadline = performance.now() + 5000;
      for (;;) {
        const { rows } = await mesh.sql.query<{ view: string; state: string; message: string | null }>(
          options.statusViews.map((v) => `SELECT '${v}' AS view, state, message FROM mesh.${v} WHERE state <> 'disabled'`).join(" UNION ALL "),
        );
        const rejected = rows.filter((r) => r.state === "rejected");
        if (rejected.length > 0) throw new Error(`examples were rejected: ${JSON.stringify(rejected)}`);
        if (rows.every((r) => r.state === "accepted")) return;
        if (performance.now() > deadline) throw new Error(`rows still pending: ${JSON.stringify(rows)}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }

    function render(proxyName: string, kind: ResourceKind, name: string): unknown {
      const proxy = options.proxies[proxyName];
      if (!proxy) throw new Error(`unknown proxy ${proxyName} in a json block`);
      const snapshot = mesh.signalbox.pipeline.currentSnapshot();
      if (!snapshot) throw new Error("no snapshot yet");
      const message = translate(snapshot, proxy)[kind].get(name);
      return message === undefined ? undefined : toJson(SCHEMAS[kind], message, { registry });
    }

    it("runs every example, and each json block is what Signalbox produces at that point", async () => {
      const all = blocks(doc);
      expect(all.filter((b) => b.kind === "sql").length).toBeGreaterThanOrEqual(10);
      expect(all.filter((b) => b.kind === "json").length).toBeGreaterThanOrEqual(12);
      const replacements: { start: number; end: number; text: string }[] = [];
      for (const block of all) {
        if (block.kind === "sql") {
          await mesh.sql.query(block.body);
          await settled();
        } else if (block.kind === "json") {
          const [, proxyName = "", kind = "", name = "", ...path] = block.info.split(" ");
          if (!RESOURCE_KINDS.includes(kind as ResourceKind)) throw new Error(`bad kind in ${block.info}`);
          const actual = () => select(render(proxyName, kind as ResourceKind, name), path);
          if (update) {
            await new Promise((resolve) => setTimeout(resolve, 300));
            replacements.push({ start: block.start, end: block.end, text: `${JSON.stringify(actual() ?? null, null, 2)}\n` });
            continue;
          }
          const expected: unknown = JSON.parse(block.body);
          const deadline = performance.now() + 5000;
          while (!isDeepStrictEqual(actual() ?? null, expected) && performance.now() < deadline) {
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
          expect(actual() ?? null, block.info).toEqual(expected);
        }
      }
      if (update) {
        let text = doc;
        for (const r of replacements.reverse()) text = text.slice(0, r.start) + r.text + text.slice(r.end);
        await writeFile(options.doc, text);
      }
    });

    it("refuses the statements the docs say are refused, naming the constraint", async () => {
      const statements = refusedStatements(blocks(doc).filter((b) => b.kind === "refused").map((b) => b.body));
      expect(statements.length).toBeGreaterThanOrEqual(5);
      await expectRefusedAsDocumented(statements, (sql) => mesh.sql.query(sql));
    });
  });
}
