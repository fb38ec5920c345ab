import { testServerHandle } from "./test/consul/handle.ts";
import { Observer } from "./test/consul/observer.ts";
const handle = await testServerHandle();
const N = 3000;
for (let i = 0; i < N; i += 50) await Promise.all(Array.from({length: 50}, (_, j) => handle.admin.register({ node: `n${(i+j)%150}`, id: `s${i+j}-1`, service: `s${i+j}`, port: 80, tags: ["v1"], checks: [{id: `s${i+j}-1-ttl`, status: "passing"}] })));
for (const hints of [true, false, true, false]) {
  const o = new Observer({ address: handle.address, initialSyncTimeoutMs: 60000, changeHints: hints });
  const t = performance.now();
  await o.start();
  console.log("hints", hints, "sync", Math.round(performance.now() - t), "ms", o.latest?.services.size);
  await o.stop();
}
await handle.close();
