import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/support/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Integration tests start servers on fixed-free ports; run files in parallel
    // processes but keep each file's tests sequential.
    pool: "forks",
  },
});
