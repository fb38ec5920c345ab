import { describe, expect, it } from "vitest";
import { missingServerFlags, SERVER_NODE_FLAGS } from "../../src/cli/node-flags.ts";

describe("the server's Node flags", () => {
  it("asks for the young-generation size when nothing sets it", () => {
    expect(SERVER_NODE_FLAGS).toContain("--max-semi-space-size=64");
    expect(SERVER_NODE_FLAGS).toContain("--no-allocation-site-pretenuring");
    expect(SERVER_NODE_FLAGS).toContain("--heap-growing-percent=100");
    expect(missingServerFlags([], "")).toEqual([...SERVER_NODE_FLAGS]);
    expect(missingServerFlags(["--inspect"], "--max-old-space-size=4096")).toEqual([...SERVER_NODE_FLAGS]);
  });

  it("leaves an operator's own value alone, on the command line or in NODE_OPTIONS, in either spelling", () => {
    expect(missingServerFlags(["--max-semi-space-size=16"], "")).toEqual(["--no-allocation-site-pretenuring", "--heap-growing-percent=100"]);
    expect(missingServerFlags([], "--enable-source-maps  --max-semi-space-size=32")).toEqual(["--no-allocation-site-pretenuring", "--heap-growing-percent=100"]);
    expect(missingServerFlags(["--max_semi_space_size=8"], "")).toEqual(["--no-allocation-site-pretenuring", "--heap-growing-percent=100"]);
    expect(missingServerFlags(["--max-semi-space-size=8", "--allocation-site-pretenuring", "--heap-growing-percent=0"], "")).toEqual([]);
    expect(missingServerFlags(["--max-semi-space-size=8"], "--no_allocation_site_pretenuring --heap_growing_percent=50")).toEqual([]);
  });
});
