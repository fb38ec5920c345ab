import { create, fromBinary, toBinary, type DescMessage, type Message, type MessageInitShape } from "@bufbuild/protobuf";
import { MetadataSchema } from "../../src/gen/envoy/config/core/v3/base_pb.ts";
import { AnySchema } from "@bufbuild/protobuf/wkt";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { describe, expect, it } from "vitest";
import { HealthStatus } from "../../src/gen/envoy/config/core/v3/health_check_pb.ts";
import { ClusterLoadAssignmentSchema } from "../../src/gen/envoy/config/endpoint/v3/endpoint_pb.ts";
import {
  EndpointSchema,
  LbEndpointSchema,
  LocalityLbEndpointsSchema,
} from "../../src/gen/envoy/config/endpoint/v3/endpoint_components_pb.ts";
import { AddressSchema, SocketAddressSchema } from "../../src/gen/envoy/config/core/v3/address_pb.ts";
import { RouteConfigurationSchema, type RouteConfiguration } from "../../src/gen/envoy/config/route/v3/route_pb.ts";
import { VirtualHostSchema, type VirtualHost } from "../../src/gen/envoy/config/route/v3/route_components_pb.ts";
import { buildSnapshot } from "../../src/translate/build-snapshot.ts";
import { RESOURCE_KINDS, SCHEMAS, TYPE_URLS, type ResourceKind } from "../../src/translate/resource-types.ts";
import { translate } from "../../src/translate/translate.ts";
import { binaryOnce, composedParts } from "../../src/xds/compose-binary.ts";
import { clusterLoadAssignmentBinary, HANDLED_FIELDS } from "../../src/xds/endpoint-binary.ts";
import { encodeDeltaBody, encodeResource, encodeSotwBody } from "../../src/xds/encoding.ts";
import { ClusterSchema } from "../../src/gen/envoy/config/cluster/v3/cluster_pb.ts";
import { DeltaDiscoveryResponseSchema, DiscoveryResponseSchema, ResourceSchema } from "../../src/gen/envoy/service/discovery/v3/discovery_pb.ts";
import { scenarios } from "../translate/scenarios.ts";

/**
 * Route configurations and endpoint assignments are not encoded by toBinary
 * but assembled from shared parts (compose-binary.ts, endpoint-binary.ts).
 * Versions are hashes of these bytes and replicas must agree on them, so the
 * bytes must be exactly toBinary's, for everything translation produces and
 * for hand-made messages that exercise every branch.
 */

function unpackValue(any: Uint8Array): string {
  return hex(fromBinary(AnySchema, any).value);
}

/**
 * The google.protobuf.Any holding `value`, as hex: what protobuf-es writes,
 * except that the value field is there even when empty (as for a set message
 * field, which is how the encoder writes it); decoders read both alike.
 */
function anyHex(kind: ResourceKind, value: Uint8Array): string {
  const typeUrl = toBinary(AnySchema, create(AnySchema, { typeUrl: TYPE_URLS[kind] }));
  return hex(typeUrl) + hex(new BinaryWriter().tag(2, WireType.LengthDelimited).bytes(value).finish());
}

/** Bytes as hex: Buffer and Uint8Array compare equal, and a mismatch shows where. */
function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("hex");
}

/** The route configuration as the resource encoder assembles it, from its virtual hosts' once-encoded bytes. */
function composedRoutes(message: RouteConfiguration): Buffer {
  return Buffer.concat(composedParts(RouteConfigurationSchema, message, "virtualHosts", virtualHostField));
}

/** A virtual host as its field (tag, length, bytes), from protobuf-es' bytes. */
function virtualHostField(host: VirtualHost, tag: Uint8Array): Buffer {
  const body = binaryOnce(VirtualHostSchema, host);
  return Buffer.concat([tag, new BinaryWriter().uint32(body.length).finish(), body]);
}

describe("resource encoding equals toBinary", () => {
  it("for every resource of every translation scenario", () => {
    let checked = 0;
    for (const scenario of scenarios) {
      const snapshot = buildSnapshot(scenario.registry, scenario.rules);
      for (const proxy of Object.values(scenario.proxies)) {
        const set = translate(snapshot, proxy);
        for (const kind of RESOURCE_KINDS) {
          for (const [name, message] of set[kind]) {
            const encoded = encodeResource(kind, name, message);
            const value = toBinary(SCHEMAS[kind], message);
            expect(unpackValue(encoded.any), `${scenario.name} ${kind} ${name}`).toBe(hex(value));
            // The whole Any as protobuf-es writes it, and the value's size.
            expect(hex(encoded.any)).toBe(anyHex(kind, value));
            expect(encoded.size).toBe(value.length);
            checked++;
          }
        }
      }
    }
    expect(checked).toBeGreaterThan(100);
  });

  const endpoint = (address: string, port: number, extra: { healthStatus?: HealthStatus; loadBalancingWeight?: number; metadata?: MessageInitShape<typeof MetadataSchema> } = {}) =>
    create(LbEndpointSchema, {
      ...extra,
      hostIdentifier: { case: "endpoint", value: { address: { address: { case: "socketAddress", value: { address, portSpecifier: { case: "portValue", value: port } } } } } },
    });

  const cases: [string, Message][] = [
    ["empty assignment", create(ClusterLoadAssignmentSchema, {})],
    [
      "weights 0, 1, 127, 128, 300000 and 2^32-1, priorities, health, protocol",
      create(ClusterLoadAssignmentSchema, {
        clusterName: "outbound|9090||checkout",
        endpoints: [0, 1, 127, 128, 300_000, 4_294_967_295].map((weight, i) =>
          create(LocalityLbEndpointsSchema, {
            locality: { region: `r${i}`, zone: i % 2 ? "z" : "", subZone: i === 3 ? "s" : "" },
            loadBalancingWeight: weight,
            priority: i,
            lbEndpoints: [
              endpoint("10.0.0.1", 0, { loadBalancingWeight: weight, healthStatus: HealthStatus.DRAINING }),
              endpoint("::1", 65535, { healthStatus: HealthStatus.UNHEALTHY }),
              endpoint("hôst-ünïcode.example", 8080, { healthStatus: -1 as HealthStatus }),
              endpoint("x".repeat(200), 300),
              endpoint("ünï-host.example", 81),
              create(LbEndpointSchema, {
                hostIdentifier: {
                  case: "endpoint",
                  value: create(EndpointSchema, {
                    address: create(AddressSchema, { address: { case: "socketAddress", value: create(SocketAddressSchema, { protocol: 1, address: "10.0.0.2", portSpecifier: { case: "portValue", value: 8080 } }) } }),
                  }),
                },
              }),
              create(LbEndpointSchema, { hostIdentifier: { case: "endpoint", value: {} } }),
            ],
          }),
        ),
        policy: { overprovisioningFactor: 1_000_000 },
      }),
    ],
    [
      "fields the fast path does not write (falls back to toBinary)",
      create(ClusterLoadAssignmentSchema, {
        clusterName: "c",
        endpoints: [
          create(LocalityLbEndpointsSchema, {
            proximity: 3,
            lbEndpoints: [
              endpoint("10.0.0.1", 80, { metadata: { filterMetadata: { a: { fields: {} } } } }),
              create(LbEndpointSchema, { hostIdentifier: { case: "endpointName", value: "named" } }),
              create(LbEndpointSchema, {
                hostIdentifier: { case: "endpoint", value: { hostname: "h", address: { address: { case: "socketAddress", value: { address: "a", portSpecifier: { case: "namedPort", value: "http" }, ipv4Compat: true } } } } },
              }),
            ],
          }),
        ],
        namedEndpoints: { x: { hostname: "x" } },
      }),
    ],
  ];

  for (const [name, message] of cases) {
    it(`for an assignment with ${name}`, () => {
      const value = toBinary(ClusterLoadAssignmentSchema, message as never);
      expect(hex(clusterLoadAssignmentBinary(message as never))).toBe(hex(value));
      // Wrapped in an Any by the same writer (or, for what it does not handle, by a copy).
      const any = encodeResource("endpoint", "x", message).any;
      expect(hex(any)).toBe(anyHex("endpoint", value));
    });
  }

  it("for an endpoint that needs the fallback inside an assignment the fast path writes", () => {
    const message = create(ClusterLoadAssignmentSchema, {
      clusterName: "c",
      endpoints: [create(LocalityLbEndpointsSchema, { lbEndpoints: [endpoint("10.0.0.1", 80, { metadata: { filterMetadata: {} } }), endpoint("h", 1)] })],
    });
    message.endpoints[0]!.lbEndpoints[1]!.hostIdentifier = { case: "endpointName", value: "n" };
    expect(hex(clusterLoadAssignmentBinary(message))).toBe(hex(toBinary(ClusterLoadAssignmentSchema, message)));
  });

  it("for a route configuration composed from shared virtual hosts, with fields on both sides of them", () => {
    const host = create(VirtualHostSchema, { name: "checkout", domains: ["checkout", "checkout:9090"] });
    const message = create(RouteConfigurationSchema, {
      name: "outbound|http",
      virtualHosts: [host, host],
      validateClusters: false,
      requestHeadersToRemove: ["x-internal"],
      ignorePortInHostMatching: true,
    });
    const composed = composedRoutes(message);
    expect(hex(composed)).toBe(hex(toBinary(RouteConfigurationSchema, message)));
    expect(fromBinary(RouteConfigurationSchema, composed).virtualHosts).toHaveLength(2);
  });

  it("for a route configuration with only a name, and with unknown fields", () => {
    const host = create(VirtualHostSchema, { name: "api", domains: ["api"] });
    const named = create(RouteConfigurationSchema, { name: "outbound|http", virtualHosts: [host] });
    const encode = (m: typeof named) => hex(composedRoutes(m));
    expect(encode(named)).toBe(hex(toBinary(RouteConfigurationSchema, named)));
    const withUnknown = { ...named, $unknown: [{ no: 999, wireType: 0, data: new Uint8Array([1]) }] };
    expect(encode(withUnknown)).toBe(hex(toBinary(RouteConfigurationSchema, withUnknown)));
    const both = { ...withUnknown, validateClusters: true };
    expect(encode(both)).toBe(hex(toBinary(RouteConfigurationSchema, both)));
  });
});

describe("the endpoint fast path knows every field of the messages it writes", () => {
  const schemas: Record<keyof typeof HANDLED_FIELDS, DescMessage> = {
    ClusterLoadAssignment: ClusterLoadAssignmentSchema,
    LocalityLbEndpoints: LocalityLbEndpointsSchema,
    LbEndpoint: LbEndpointSchema,
    Endpoint: EndpointSchema,
    Address: AddressSchema,
    SocketAddress: SocketAddressSchema,
  };
  for (const [message, schema] of Object.entries(schemas)) {
    it(`${message}: a field added to the protos must be handled or checked in endpoint-binary.ts`, () => {
      const handled: readonly string[] = HANDLED_FIELDS[message as keyof typeof HANDLED_FIELDS];
      expect(schema.fields.map((field) => field.name).sort()).toEqual([...handled].sort());
    });
  }
});

describe("response bodies", () => {
  // Short and long resources (a length of one and of three varint bytes) and a non-ASCII name.
  const encoded = ([["api", 10], ["zürich-ä", 200], ["big", 20_000]] as const).map(([name, size]) => {
    const cluster = create(ClusterSchema, { name, altStatName: "x".repeat(size) });
    return { cluster, encoded: encodeResource("cluster", name, cluster) };
  });
  const anyOf = (cluster: (typeof encoded)[number]["cluster"]) => create(AnySchema, { typeUrl: TYPE_URLS.cluster, value: toBinary(ClusterSchema, cluster) });

  it("a delta body equals toBinary of the DeltaDiscoveryResponse (without its nonce): resources as Resources, removed names", () => {
    const body = encodeDeltaBody(TYPE_URLS.cluster, "sys-1", encoded.map((e) => e.encoded), ["gone", "gône-ü"]);
    const expected = toBinary(
      DeltaDiscoveryResponseSchema,
      create(DeltaDiscoveryResponseSchema, {
        systemVersionInfo: "sys-1",
        resources: encoded.map(({ cluster, encoded }) => create(ResourceSchema, { version: encoded.version, name: encoded.name, resource: anyOf(cluster) })),
        typeUrl: TYPE_URLS.cluster,
        removedResources: ["gone", "gône-ü"],
      }),
    );
    expect(hex(body)).toBe(hex(expected));
    // No system version: the field is left out, as protobuf-es leaves out an empty string.
    expect(hex(encodeDeltaBody(TYPE_URLS.cluster, "", [], ["gone"]))).toBe(
      hex(toBinary(DeltaDiscoveryResponseSchema, create(DeltaDiscoveryResponseSchema, { typeUrl: TYPE_URLS.cluster, removedResources: ["gone"] }))),
    );
  });

  it("a state-of-the-world body equals toBinary of the DiscoveryResponse (without its nonce), an empty version included", () => {
    for (const versionInfo of ["v-1", ""]) {
      const body = encodeSotwBody(TYPE_URLS.cluster, versionInfo, encoded.map((e) => e.encoded));
      // protobuf-es leaves out an empty version_info; Signalbox always writes it (decoders read both alike).
      const expected = toBinary(DiscoveryResponseSchema, create(DiscoveryResponseSchema, { versionInfo, resources: encoded.map(({ cluster }) => anyOf(cluster)), typeUrl: TYPE_URLS.cluster }));
      const written = versionInfo === "" ? body.subarray(2) : body;
      expect(hex(written), versionInfo).toBe(hex(expected));
      expect(fromBinary(DiscoveryResponseSchema, body).versionInfo).toBe(versionInfo);
    }
  });
});
