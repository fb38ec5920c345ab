import { describe, expect, it } from "vitest";
import { classifyRequest, type TypeRequest, type TypeStreamState } from "../../src/xds/ack.ts";

const request = (over: Partial<TypeRequest>): TypeRequest => ({
  versionInfo: "",
  responseNonce: "",
  resourceNames: [],
  errorMessage: null,
  ...over,
});

describe("classifyRequest", () => {
  const cases: Array<[string, TypeRequest, TypeStreamState, string, boolean]> = [
    ["first request on a stream", request({ resourceNames: ["a"] }), { lastNonce: null, subscription: null }, "initial", true],
    [
      "reconnect: client reports a version but has no nonce for this stream",
      request({ versionInfo: "v1", resourceNames: ["a"] }),
      { lastNonce: null, subscription: null },
      "initial",
      true,
    ],
    [
      "nonce from an earlier stream before we sent anything",
      request({ versionInfo: "v1", responseNonce: "7" }),
      { lastNonce: null, subscription: null },
      "initial",
      true,
    ],
    ["ACK of the latest response", request({ versionInfo: "v2", responseNonce: "3", resourceNames: ["a"] }), { lastNonce: "3", subscription: { names: ["a"] } }, "ack", false],
    [
      "ACK that also subscribes to another name",
      request({ versionInfo: "v2", responseNonce: "3", resourceNames: ["a", "b"] }),
      { lastNonce: "3", subscription: { names: ["a"] } },
      "ack",
      true,
    ],
    [
      "ACK with names reordered is not a subscription change",
      request({ versionInfo: "v2", responseNonce: "3", resourceNames: ["b", "a"] }),
      { lastNonce: "3", subscription: { names: ["a", "b"] } },
      "ack",
      false,
    ],
    [
      "NACK of the latest response",
      request({ versionInfo: "v1", responseNonce: "3", resourceNames: ["a"], errorMessage: "bad cluster" }),
      { lastNonce: "3", subscription: { names: ["a"] } },
      "nack",
      false,
    ],
    [
      "stale nonce (a newer response is in flight)",
      request({ versionInfo: "v1", responseNonce: "2", resourceNames: ["a"] }),
      { lastNonce: "3", subscription: { names: ["a"] } },
      "stale",
      false,
    ],
    [
      "stale NACK is still stale",
      request({ versionInfo: "v1", responseNonce: "2", resourceNames: ["a"], errorMessage: "old" }),
      { lastNonce: "3", subscription: { names: ["a"] } },
      "stale",
      false,
    ],
    [
      "unsubscribe everything with the latest nonce",
      request({ versionInfo: "v2", responseNonce: "3", resourceNames: [] }),
      { lastNonce: "3", subscription: { names: ["a"] } },
      "ack",
      true,
    ],
  ];

  it.each(cases)("%s", (_name, req, state, kind, changed) => {
    expect(classifyRequest(req, state)).toEqual({ kind, subscriptionChanged: changed });
  });
});
