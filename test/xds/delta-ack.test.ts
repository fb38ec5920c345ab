import { describe, expect, it } from "vitest";
import { classifyDeltaRequest, type DeltaTypeRequest, type DeltaTypeStreamState } from "../../src/xds/delta-ack.ts";

const request = (over: Partial<DeltaTypeRequest>): DeltaTypeRequest => ({
  responseNonce: "",
  errorMessage: null,
  subscribes: false,
  unsubscribes: false,
  ...over,
});

const fresh: DeltaTypeStreamState = { started: false, lastNonce: null, outstanding: new Set() };
const sent = (latest: string, ...outstanding: string[]): DeltaTypeStreamState => ({
  started: true,
  lastNonce: latest,
  outstanding: new Set([latest, ...outstanding]),
});

describe("classifyDeltaRequest", () => {
  const cases: Array<[string, DeltaTypeRequest, DeltaTypeStreamState, boolean, { kind: string; latest: boolean; legacyWildcard: boolean }]> = [
    ["first CDS request naming nothing: legacy wildcard", request({}), fresh, true, { kind: "initial", latest: false, legacyWildcard: true }],
    ["first EDS request naming nothing: not a wildcard type", request({}), fresh, false, { kind: "initial", latest: false, legacyWildcard: false }],
    ["first CDS request that only unsubscribes: not a wildcard", request({ unsubscribes: true }), fresh, true, { kind: "initial", latest: false, legacyWildcard: false }],
    ['first request subscribing "*"', request({ subscribes: true }), fresh, true, { kind: "initial", latest: false, legacyWildcard: false }],
    ["first request naming resources", request({ subscribes: true }), fresh, true, { kind: "initial", latest: false, legacyWildcard: false }],
    [
      "first request carrying a nonce from an earlier stream",
      request({ responseNonce: "7", subscribes: true }),
      fresh,
      false,
      { kind: "initial", latest: false, legacyWildcard: false },
    ],
    ["spontaneous subscription change (no nonce)", request({ subscribes: true }), sent("3"), false, { kind: "subscription", latest: false, legacyWildcard: false }],
    ["ACK of the latest response", request({ responseNonce: "3" }), sent("3"), false, { kind: "ack", latest: true, legacyWildcard: false }],
    ["ACK of an earlier, outstanding response", request({ responseNonce: "2" }), sent("3", "2"), false, { kind: "ack", latest: false, legacyWildcard: false }],
    ["NACK of the latest response", request({ responseNonce: "3", errorMessage: "bad" }), sent("3"), false, { kind: "nack", latest: true, legacyWildcard: false }],
    [
      "NACK of an earlier, outstanding response",
      request({ responseNonce: "2", errorMessage: "bad" }),
      sent("3", "2"),
      false,
      { kind: "nack", latest: false, legacyWildcard: false },
    ],
    ["ACK naming a nonce never sent: stale", request({ responseNonce: "9" }), sent("3"), false, { kind: "stale", latest: false, legacyWildcard: false }],
    [
      "NACK of an answered (no longer outstanding) response: stale",
      request({ responseNonce: "1", errorMessage: "late" }),
      sent("3"),
      false,
      { kind: "stale", latest: false, legacyWildcard: false },
    ],
    [
      "later request naming nothing on a wildcard type is not a new wildcard",
      request({}),
      sent("3"),
      true,
      { kind: "subscription", latest: false, legacyWildcard: false },
    ],
  ];

  it.each(cases)("%s", (_name, req, state, wildcardCapable, expected) => {
    expect(classifyDeltaRequest(req, state, wildcardCapable)).toEqual(expected);
  });
});
