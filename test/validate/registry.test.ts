// envoyRegistry() covers every generated file, and the interpreter can compile the
// rules of every message type in it (a rule it cannot apply, or an RE2 pattern that
// does not compile as a JS RegExp, throws here rather than at push time).
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { create, getOption, hasOption, type DescFile, type DescMessage } from "@bufbuild/protobuf";
import { nestedTypes } from "@bufbuild/protobuf/reflect";
import { describe, expect, it } from "vitest";
import { rules } from "../../src/gen/validate/validate_pb.ts";
import { compileRe2, envoyRegistry, validateMessage } from "../../src/validate/pgv.ts";

const GEN = join(import.meta.dirname, "../../src/gen");

function generatedModules(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) generatedModules(p, out);
    else if (p.endsWith("_pb.ts")) out.push(p);
  }
  return out;
}

describe("envoyRegistry", () => {
  it("holds every message of every file generated under src/gen", async () => {
    const registry = envoyRegistry();
    const missing: string[] = [];
    let files = 0;
    for (const path of generatedModules(GEN)) {
      const names = [...readFileSync(path, "utf8").matchAll(/^export const (file_\w+): GenFile/gm)].map((m) => m[1]!);
      const mod = (await import(path)) as Record<string, DescFile>;
      for (const name of names) {
        files++;
        for (const t of nestedTypes(mod[name]!)) {
          if (t.kind === "message" && registry.getMessage(t.typeName) !== t) missing.push(`${relative(GEN, path)}: ${t.typeName}`);
        }
      }
    }
    expect(files).toBeGreaterThan(100);
    expect(missing).toEqual([]);
  });

  it("compiles the rules of every message type, and validating a default instance does not throw", () => {
    const registry = envoyRegistry();
    let messages = 0;
    let ruled = 0;
    for (const t of registry) {
      if (t.kind !== "message") continue;
      messages++;
      if (t.fields.some((f) => hasOption(f, rules))) ruled++;
      expect(() => validateMessage(t as DescMessage, create(t as DescMessage), registry), t.typeName).not.toThrow();
    }
    expect(messages).toBeGreaterThan(500);
    expect(ruled).toBeGreaterThan(100);
  });

  it("every pattern in the Envoy protos compiles as a unicode-mode RegExp", () => {
    const patterns = new Set<string>();
    for (const t of envoyRegistry()) {
      if (t.kind !== "message") continue;
      for (const f of t.fields) {
        if (!hasOption(f, rules)) continue;
        const r = getOption(f, rules);
        const inner = r.type.case === "repeated" ? r.type.value.items?.type : r.type;
        if (inner?.case === "string" && inner.value.pattern !== "") patterns.add(inner.value.pattern);
      }
    }
    expect(patterns.size).toBeGreaterThan(0);
    for (const p of patterns) expect(compileRe2(p).flags, p).toContain("u");
  });
});
