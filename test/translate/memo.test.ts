import { describe, expect, it } from "vitest";
import type { Service } from "../../src/model/registry.ts";
import { acrossSnapshots, acrossSnapshotsForCaller, forgetServicesOutside } from "../../src/translate/memo.ts";

/** Reuse across snapshots: by service object and deps, held by name, dropped with the service. */
function svc(name: string, address = "10.0.0.1"): Service {
  return {
    name,
    protocol: "http",
    port: 80,
    instances: [{ id: `${name}-1`, service: name, address, port: 8080, meshPort: null, labels: {}, region: "", zone: "", weight: 1, health: "healthy" }],
  };
}

/** A piece that counts how often it was computed. */
function counted(): { calls: number; piece: (owner: Service, deps: readonly unknown[]) => object } {
  const state = {
    calls: 0,
    piece: (owner: Service, deps: readonly unknown[]) =>
      acrossSnapshots(owner, "piece", deps, () => {
        state.calls++;
        return { owner: owner.name };
      }),
  };
  return state;
}

describe("acrossSnapshots", () => {
  it("returns the same value while the service object and deps are the same", () => {
    const memo = counted();
    const api = svc("memo-api-1");
    const first = memo.piece(api, [1, "a"]);
    expect(memo.piece(api, [1, "a"])).toBe(first);
    expect(memo.calls).toBe(1);
    // Deps compare structurally: an equal new array is the same input.
    expect(memo.piece(api, [1, "a"].slice())).toBe(first);
    expect(memo.calls).toBe(1);
  });

  it("recomputes when the deps or the service object change, and keeps only the newest object's pieces", () => {
    const memo = counted();
    const before = svc("memo-api-2");
    const first = memo.piece(before, [1]);
    expect(memo.piece(before, [2])).not.toBe(first);
    expect(memo.calls).toBe(2);
    // A newer object for the service (say, its instances changed) replaces the name's pieces.
    const after = svc("memo-api-2", "10.0.0.2");
    const fresh = memo.piece(after, [2]);
    expect(memo.calls).toBe(3);
    expect(memo.piece(after, [2])).toBe(fresh);
    // Going back to the old object recomputes: its pieces are no longer held.
    memo.piece(before, [2]);
    expect(memo.calls).toBe(4);
  });

  it("forgets the pieces of services outside the mesh, and only those", () => {
    const memo = counted();
    const kept = svc("memo-kept");
    const gone = svc("memo-gone");
    const keptPiece = memo.piece(kept, []);
    memo.piece(gone, []);
    expect(memo.calls).toBe(2);
    forgetServicesOutside(new Map([[kept.name, kept]]));
    expect(memo.piece(kept, [])).toBe(keptPiece);
    expect(memo.calls).toBe(2);
    memo.piece(gone, []);
    expect(memo.calls).toBe(3);
  });

  it("forgets a calling service's pieces when it leaves the mesh", () => {
    let calls = 0;
    const piece = (caller: string) =>
      acrossSnapshotsForCaller(
        caller,
        "routes",
        [],
        (input) => {
          calls++;
          return { caller: input };
        },
        caller,
      );
    const kept = svc("memo-caller-kept");
    const keptPiece = piece(kept.name);
    piece("memo-caller-gone");
    expect(calls).toBe(2);
    forgetServicesOutside(new Map([[kept.name, kept]]));
    expect(piece(kept.name)).toBe(keptPiece);
    expect(calls).toBe(2);
    piece("memo-caller-gone");
    expect(calls).toBe(3);
  });
});
