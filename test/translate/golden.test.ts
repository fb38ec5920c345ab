import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { toJson } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { buildSnapshot } from "../../src/translate/build-snapshot.ts";
import { RESOURCE_KINDS, SCHEMAS } from "../../src/translate/resource-types.ts";
import { translate } from "../../src/translate/translate.ts";
import { envoyRegistry, validateMessage } from "../../src/validate/pgv.ts";
import { scenarios } from "./scenarios.ts";

/**
 * Golden files: each scenario's resources, per proxy and kind, as Envoy JSON.
 * Regenerate with `UPDATE_GOLDEN=1 npx vitest run test/translate` and review the diff.
 */
const GOLDEN_DIR = join(dirname(fileURLToPath(import.meta.url)), "golden");
const update = process.env.UPDATE_GOLDEN === "1";
const registry = envoyRegistry();

describe.each(scenarios)("scenario $name", (scenario) => {
  const snapshot = buildSnapshot(scenario.registry, scenario.rules);

  it("accepts every rule of the scenario", () => {
    expect(snapshot.rejected).toEqual([]);
  });

  describe.each(Object.entries(scenario.proxies))("proxy %s", (proxyName, proxy) => {
    const resources = translate(snapshot, proxy);

    it.each(RESOURCE_KINDS)("%s resources match the golden file", (kind) => {
      const rendered = [...resources[kind].entries()]
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([, message]) => toJson(SCHEMAS[kind], message, { registry }));
      const text = `${JSON.stringify(rendered, null, 2)}\n`;
      const file = join(GOLDEN_DIR, scenario.name, proxyName, `${kind}.json`);
      if (update || !existsSync(file)) {
        if (!update) throw new Error(`missing golden file ${file}; run with UPDATE_GOLDEN=1 and review it`);
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(file, text);
      }
      expect(text).toBe(readFileSync(file, "utf8"));
    });

    it.each(RESOURCE_KINDS)("%s resources pass Envoy's field validation", (kind) => {
      for (const [name, message] of resources[kind]) {
        expect({ name, violations: validateMessage(SCHEMAS[kind], message, registry) }).toEqual({ name, violations: [] });
      }
    });

    it("is deterministic: translating twice gives equal resources", () => {
      const again = translate(buildSnapshot(scenario.registry, scenario.rules), proxy);
      for (const kind of RESOURCE_KINDS) {
        const render = (set: typeof resources) =>
          JSON.stringify([...set[kind].values()].map((m) => toJson(SCHEMAS[kind], m, { registry })));
        expect(render(again)).toBe(render(resources));
      }
    });
  });
});
