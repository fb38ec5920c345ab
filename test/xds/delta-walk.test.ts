import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { DeltaDiscoveryRequestSchema, DeltaDiscoveryResponseSchema, type DeltaDiscoveryResponse } from "../../src/gen/envoy/service/discovery/v3/discovery_pb.ts";
import type { Proxy } from "../../src/model/proxy.ts";
import { emptyRules } from "../../src/model/rules.ts";
import { buildSnapshot } from "../../src/translate/build-snapshot.ts";
import { TYPE_URLS, type ResourceKind } from "../../src/translate/resource-types.ts";
import { translate } from "../../src/translate/translate.ts";
import { ResourceCache } from "../../src/xds/cache.ts";
import { DeltaStream } from "../../src/xds/delta-stream.ts";
import { withNonce } from "../../src/xds/encoding.ts";
import { XdsMetrics } from "../../src/xds/metrics.ts";
import { decodeDeltaDiscoveryRequest } from "../../src/xds/request-decode.ts";
import { seededRandom } from "../support/seeded-random.ts";
import { httpService, registryOf, sidecar } from "../translate/builders.ts";
import { seeds } from "./envoy-walk.ts";

/**
 * Random walks of a mesh whose services come and go and whose instances move,
 * and of clients that subscribe and unsubscribe, checked against what a delta
 * client must end up holding after every step: with a wildcard, exactly the
 * view's resources; by name, exactly the subscribed names the view has, each
 * at the view's version. The streams take shortcuts (a client holding a view
 * map exactly is answered with the difference between maps, shared by
 * streams); the walk checks them against the protocol, not against another
 * implementation.
 */
const logger = pino({ level: "silent" });
const POOL = ["client", "a", "b", "c", "d", "e", "f", "g", "h", "i"];

/** A delta client of one type: what it holds, applied from the responses it receives, each ACKed. */
class Client {
  readonly holds = new Map<string, string>();
  readonly subscribed = new Set<string>();
  stream: DeltaStream;
  private readonly inbox: DeltaDiscoveryResponse[] = [];
  private readonly answered = new Set<string>();
  /** Names unsubscribed under a wildcard: the server tells the client whether the wildcard still covers each. */
  private readonly toTell = new Set<string>();
  responses = 0;

  constructor(
    private readonly cache: ResourceCache,
    private readonly proxy: Proxy,
    readonly kind: ResourceKind,
    public wildcard: boolean,
  ) {
    this.stream = this.open();
  }

  private open(): DeltaStream {
    const cache = this.cache;
    const proxy = this.proxy;
    return new DeltaStream(
      { streamId: 1, proxy, protocol: "delta", connectedAt: "", types: {} },
      cache,
      { write: (body, nonce) => (this.inbox.push(fromBinary(DeltaDiscoveryResponseSchema, withNonce(body, nonce))), true), onDrain: () => {} },
      new XdsMetrics(),
      logger,
    );
  }

  /**
   * A new stream, as after a lost connection: the first request lists what the
   * client subscribes to and, in initial_resource_versions, what it holds.
   */
  reconnect(): void {
    this.stream.close();
    this.inbox.length = 0;
    this.stream = this.open();
    // What it holds is not sent again at the same version.
    this.noResend = new Map(this.holds);
    this.send([...(this.wildcard ? ["*"] : []), ...this.subscribed], [], "", Object.fromEntries(this.holds));
    this.noResend = null;
  }

  private noResend: Map<string, string> | null = null;

  send(subscribe: string[], unsubscribe: string[] = [], nonce = "", initial: Record<string, string> = {}): void {
    const bytes = toBinary(
      DeltaDiscoveryRequestSchema,
      create(DeltaDiscoveryRequestSchema, {
        typeUrl: TYPE_URLS[this.kind],
        resourceNamesSubscribe: subscribe,
        resourceNamesUnsubscribe: unsubscribe,
        responseNonce: nonce,
        initialResourceVersions: initial,
      }),
    );
    this.stream.handleRequest(decodeDeltaDiscoveryRequest(bytes).request);
    this.drain();
  }

  subscribe(names: string[]): void {
    for (const name of names) {
      if (name === "*") this.wildcard = true;
      else this.subscribed.add(name);
    }
    this.answered.clear();
    this.send(names);
    // Every name subscribed to is answered: with the resource, or as removed when there is none.
    for (const name of names) if (name !== "*") expect(this.answered.has(name), `subscribed ${name}, not answered`).toBe(true);
  }

  unsubscribe(names: string[]): void {
    // The client forgets what it unsubscribed from; the server says nothing.
    for (const name of names) {
      if (name === "*") {
        // Dropping the wildcard, it forgets what only the wildcard covered.
        this.wildcard = false;
        for (const held of [...this.holds.keys()]) if (!this.subscribed.has(held)) this.holds.delete(held);
        continue;
      }
      this.subscribed.delete(name);
      this.holds.delete(name);
      if (this.wildcard) this.toTell.add(name);
    }
    this.send([], names);
  }

  /** Applies and ACKs every response received. */
  drain(): void {
    for (let response = this.inbox.shift(); response; response = this.inbox.shift()) {
      this.responses++;
      expect(response.resources.length + response.removedResources.length, "a response with nothing in it").toBeGreaterThan(0);
      for (const resource of response.resources) {
        expect(this.noResend?.get(resource.name), `${resource.name} sent again at the version the reconnecting client holds`).not.toBe(resource.version);
        this.holds.set(resource.name, resource.version);
        this.answered.add(resource.name);
        this.toTell.delete(resource.name);
      }
      for (const name of response.removedResources) this.answered.add(name);
      for (const name of response.removedResources) {
        // Removals are news about names the client holds or asked for, nothing else.
        expect(this.wildcard || this.holds.has(name) || this.subscribed.has(name) || this.toTell.delete(name), `removal of ${name}, neither held nor subscribed`).toBe(true);
        this.holds.delete(name);
      }
      this.send([], [], response.nonce);
    }
  }

  /** What the client must hold, given the view's resources of its kind. */
  expected(view: ReadonlyMap<string, { readonly version: string }>): Map<string, string> {
    const expected = new Map<string, string>();
    for (const [name, resource] of view) if (this.wildcard || this.subscribed.has(name)) expected.set(name, resource.version);
    return expected;
  }
}

const meshOf = (present: readonly string[], moved: number) =>
  buildSnapshot(registryOf(...present.map((service, i) => httpService(service, [`10.0.${i}.${1 + ((moved + i) % 3)}`, `10.1.${i}.1`]))), emptyRules);

/** Every endpoint name any mesh of POOL's services can have, to subscribe to before and after it exists. */
const allNames = (() => {
  const cache = new ResourceCache(translate, () => [], logger);
  cache.setSnapshot(meshOf(POOL, 0));
  return [...cache.viewFor(sidecar("probe", "client", 8080))!.resources.endpoint.keys()];
})();

function walk(seed: number, steps: number): void {
  const rng = seededRandom(seed);
  const pick = <T,>(items: readonly T[]): T => items[Math.floor(rng() * items.length)] as T;

  const cache = new ResourceCache(translate, () => [], logger);
  let present = POOL.slice(0, 4);
  let moved = 0;
  cache.setSnapshot(meshOf(present, moved));
  const proxies = [sidecar("client-1", "client", 8080), sidecar("client-2", "client", 8080)];
  const clients = [
    ...proxies.map((proxy) => new Client(cache, proxy, "endpoint", false)),
    ...proxies.map((proxy) => new Client(cache, proxy, "cluster", true)),
  ];
  const [first] = clients as [Client];
  const namedClients = clients.filter((each) => each.kind === "endpoint");
  for (const [i, client] of clients.entries()) {
    if (client.wildcard) client.send([]);
    // The first named client asks for every name (as Envoy does for every cluster it has), so it
    // mostly holds exactly its view; the second for some.
    else client.subscribe(i === 0 ? allNames : allNames.filter((_, n) => n % 2 === 0));
  }
  const check = (step: string) => {
    // The cache's endpoint index follows the views through every rebuild.
    expect(cache.indexProblems(), step).toEqual([]);
    const view = cache.viewFor(proxies[0]!)!;
    for (const client of clients) {
      expect(Object.fromEntries(client.holds), `${step}: ${client.kind} client ${clients.indexOf(client)}, seed ${seed}`).toEqual(
        Object.fromEntries(client.expected(view.resources[client.kind])),
      );
    }
  };
  check("connected");

  for (let step = 0; step < steps; step++) {
    const op = rng();
    let what: string;
    if (op < 0.45) {
      // The mesh changes: a service joins, leaves, or both at once, or instances move (with a join or alone).
      const change = rng();
      const join = () => {
        const absent = POOL.filter((service) => !present.includes(service));
        if (absent.length > 0) present = [...present, pick(absent)];
      };
      const leave = () => {
        const removable = present.filter((service) => service !== "client");
        if (removable.length > 0) {
          const gone = pick(removable);
          present = present.filter((service) => service !== gone);
        }
      };
      if (change < 0.3) join();
      else if (change < 0.5) leave();
      else if (change < 0.65) {
        leave();
        join();
      } else if (change < 0.8) {
        // Instances move as a service joins, in one snapshot.
        join();
        moved++;
      } else moved++;
      what = `mesh ${present.join(",")} moved ${moved}`;
      cache.setSnapshot(meshOf(present, moved));
      for (const client of clients) {
        client.stream.refresh();
        client.drain();
      }
    } else {
      const client = pick(namedClients);
      // Now and then the wildcard too, for clients that subscribe by name.
      const names = Array.from({ length: 1 + Math.floor(rng() * 3) }, () => (rng() < 0.1 ? "*" : pick(allNames)));
      if (op < 0.5) {
        what = "reconnect";
        client.reconnect();
      } else if (op < 0.7) {
        what = `subscribe ${names.join(" ")}`;
        client.subscribe(names);
      } else {
        what = `unsubscribe ${names.join(" ")}`;
        client.unsubscribe(names);
      }
    }
    check(`step ${step} (${what})`);
  }
  expect(first.responses).toBeGreaterThan(steps / 10);
}

describe("a delta client that holds exactly its view", () => {
  const endpointsOf = (service: string) => allNames.filter((name) => name.endsWith(`|${service}`));

  it("loses a service that leaves while one it has not subscribed to joins, and is answered for a name it adds then", () => {
    const cache = new ResourceCache(translate, () => [], logger);
    const proxy = sidecar("client-1", "client", 8080);
    const view = () => cache.viewFor(proxy)!.resources.endpoint;
    cache.setSnapshot(meshOf(["client", "a", "b"], 0));
    const client = new Client(cache, proxy, "endpoint", false);
    client.subscribe(allNames);
    // It drops c (not in the mesh yet); an instance move then leaves it holding exactly its view again.
    expect(endpointsOf("c").length).toBeGreaterThan(0);
    client.unsubscribe(endpointsOf("c"));
    cache.setSnapshot(meshOf(["client", "a", "b"], 1));
    client.stream.refresh();
    client.drain();
    // b leaves as c joins: b's endpoints are removed, c's not sent.
    cache.setSnapshot(meshOf(["client", "a", "c"], 1));
    client.stream.refresh();
    client.drain();
    expect(Object.fromEntries(client.holds)).toEqual(Object.fromEntries(client.expected(view())));
    // A name that does not exist, subscribed to now, is answered as removed (subscribe checks).
    client.subscribe(endpointsOf("d"));
    expect(Object.fromEntries(client.holds)).toEqual(Object.fromEntries(client.expected(view())));
  });
});

describe("delta streams on a random walk", () => {
  for (const seed of seeds) {
    it(`hold exactly what the protocol says after every step (seed ${seed})`, () => walk(seed, 200));
  }
});
