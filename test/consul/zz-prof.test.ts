import { it } from "vitest";
import { testServerHandle } from "./handle.ts";
import { Observer } from "./observer.ts";
it("prof", async () => {
  const handle = await testServerHandle();
  const N = 1200;
  for (let i = 0; i < N; i += 50) await Promise.all(Array.from({length: 50}, (_, j) => handle.admin.register({ node: `n${(i+j)%60}`, id: `s${i+j}-1`, service: `s${i+j}`, port: 80, tags: ["v1"], checks: [{id: `s${i+j}-1-ttl`, status: "passing"}] })));
  const o = new Observer({ address: handle.address, maxConcurrentWatches: 16, initialSyncTimeoutMs: 60000 });
  await o.start();
  for (let k = 0; k < 3; k++) {
    const before = o.source.stats().sweepReads;
    const t0 = performance.now(); handle.proxy.stats.reset();
    await handle.admin.register({ node: "x", id: `s5-2`, service: "s5", port: 81, tags: ["v1"] });
    while (o.source.stats().sweeps <= k) await new Promise(r => setTimeout(r, 5));
    const r0 = 0;
    const want = o.source.stats().sweepReads - before;
    while (handle.proxy.stats.requests - r0 < want - 20) await new Promise(r => setTimeout(r, 5));
    console.log("sweep", k, o.source.stats().sweepReads - before, Math.round(performance.now() - t0), "ms");
    await handle.admin.deregister("x", "s5-2");
    await new Promise(r => setTimeout(r, 1500));
  }
  await o.stop(); await handle.close();
}, 120000);
