import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";

/** `signalbox serve` with no database URL: the embedded store, no external server. */
async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

/** Polls until `url` answers 200 (connection refused and 503 both mean "not yet"). */
async function waitFor(url: string, withinMs: number): Promise<{ status: number; body: unknown; ms: number }> {
  const started = performance.now();
  let last: string;
  for (;;) {
    try {
      const response = await fetch(url);
      const body: unknown = await response.json();
      if (response.status === 200) return { status: response.status, body, ms: performance.now() - started };
      last = `${response.status} ${JSON.stringify(body)}`;
    } catch (error) {
      last = String(error);
    }
    if (performance.now() - started > withinMs) throw new Error(`${url} not 200 within ${withinMs} ms; last: ${last}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("signalbox serve (embedded default)", () => {
  let child: ChildProcess | undefined;
  let dataDir: string | undefined;
  /** Spawns `signalbox serve` (the launcher) on the embedded store in a fresh data dir. */
  async function startServe(): Promise<{ server: ChildProcess; adminPort: number }> {
    dataDir = mkdtempSync(join(tmpdir(), "signalbox-serve-"));
    const [xdsPort, adminPort] = [await freePort(), await freePort()];
    const env = { ...process.env };
    delete env.DATABASE_URL;
    const server = spawn(
      process.execPath,
      ["bin/signalbox.js", "serve", "--data-dir", dataDir, "--xds-port", String(xdsPort), "--admin-port", String(adminPort), "--admin-host", "127.0.0.1", "--xds-host", "127.0.0.1"],
      { env, stdio: ["ignore", "pipe", "pipe"] },
    );
    child = server;
    return { server, adminPort };
  }

  afterEach(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child?.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    }
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it("answers /healthz within 10 s and becomes ready, then stops cleanly on SIGTERM", { timeout: 90_000 }, async () => {
    const { server, adminPort } = await startServe();
    let output = "";
    server.stdout?.on("data", (chunk) => (output += chunk));
    server.stderr?.on("data", (chunk) => (output += chunk));
    const health = await waitFor(`http://127.0.0.1:${adminPort}/healthz`, 10_000);
    console.log(`[serve] /healthz answered ${Math.round(health.ms)} ms after spawn`);
    expect(health.status).toBe(200);
    const ready = await waitFor(`http://127.0.0.1:${adminPort}/readyz`, 60_000);
    console.log(`[serve] /readyz ready ${Math.round(health.ms + ready.ms)} ms after spawn`);
    expect(ready.body).toMatchObject({ status: "ready" });
    expect(output).toContain("using the embedded store");
    // `serve` relaunched Node with the server's V8 flags (src/cli/node-flags.ts).
    expect(output).toContain("--max-semi-space-size=64");
    expect(output).toContain("--no-allocation-site-pretenuring");
    expect(output).toContain("--heap-growing-percent=100");
    const exit = new Promise<number | null>((resolve) => server.once("exit", resolve));
    server.kill("SIGTERM");
    expect(await exit).toBe(0);
  });

  it("stops the relaunched server when the launcher is killed outright", { timeout: 90_000 }, async () => {
    const { server, adminPort } = await startServe();
    await waitFor(`http://127.0.0.1:${adminPort}/healthz`, 10_000);
    // SIGKILL cannot be forwarded: the server notices its launcher is gone and stops.
    const exit = new Promise((resolve) => server.once("exit", resolve));
    server.kill("SIGKILL");
    await exit;
    const started = performance.now();
    let answering = true;
    while (answering && performance.now() - started < 15_000) {
      answering = await fetch(`http://127.0.0.1:${adminPort}/healthz`).then(
        () => true,
        () => false,
      );
      if (answering) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(answering).toBe(false);
  });
});
