import { request as httpRequest } from "node:http";

/** Shared by the Envoy-in-Docker suites: can a suite run here, and if not, why. */
export type Testcontainers = typeof import("testcontainers");

/** GET /_ping on the Docker engine's socket (DOCKER_HOST unix:// or the default one). */
function pingDocker(): Promise<string | null> {
  const host = process.env.DOCKER_HOST;
  if (host && !host.startsWith("unix://")) return Promise.resolve(null); // a TCP engine: let testcontainers decide
  const socketPath = host ? host.slice("unix://".length) : "/var/run/docker.sock";
  return new Promise((resolve) => {
    const req = httpRequest({ socketPath, path: "/_ping", timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200 ? null : `${socketPath} answered /_ping with ${res.statusCode}`);
    });
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", (error) => resolve(`cannot reach the Docker engine at ${socketPath} (${error.message})`));
    req.end();
  });
}

/** Whether a Docker suite can run: a Docker engine answers, and testcontainers loads and finds it. */
export async function dockerAvailability(): Promise<{ ok: true; tc: Testcontainers; reason: string } | { ok: false; reason: string }> {
  const problem = await pingDocker();
  if (problem) return { ok: false, reason: problem };
  let tc: Testcontainers;
  try {
    tc = await import("testcontainers");
  } catch (error) {
    return { ok: false, reason: `testcontainers does not load on Node ${process.version}: ${(error as Error).message}` };
  }
  try {
    const client = await tc.getContainerRuntimeClient();
    return { ok: true, tc, reason: `container runtime at ${client.info.containerRuntime.host}` };
  } catch (error) {
    return { ok: false, reason: (error as Error).message.split("\n")[0] ?? String(error) };
  }
}
