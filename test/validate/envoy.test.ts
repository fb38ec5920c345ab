// The PGV interpreter against real Envoy messages: each rule family catches a bad
// value (with the expected path, rule and a readable message) and accepts a good one.
import { create, type DescMessage, type Message, type MessageInitShape } from "@bufbuild/protobuf";
import { anyPack, DurationSchema, UInt32ValueSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import {
  Cluster_DiscoveryType,
  Cluster_LbPolicy,
  ClusterSchema,
} from "../../src/gen/envoy/config/cluster/v3/cluster_pb.ts";
import { AddressSchema, SocketAddressSchema } from "../../src/gen/envoy/config/core/v3/address_pb.ts";
import { ExtensionConfigSourceSchema } from "../../src/gen/envoy/config/core/v3/config_source_pb.ts";
import { UpstreamHttpProtocolOptionsSchema } from "../../src/gen/envoy/config/core/v3/protocol_pb.ts";
import { ClusterLoadAssignmentSchema } from "../../src/gen/envoy/config/endpoint/v3/endpoint_pb.ts";
import { LbEndpointSchema } from "../../src/gen/envoy/config/endpoint/v3/endpoint_components_pb.ts";
import { ListenerSchema } from "../../src/gen/envoy/config/listener/v3/listener_pb.ts";
import { RouteConfigurationSchema } from "../../src/gen/envoy/config/route/v3/route_pb.ts";
import { HeaderMatcherSchema, RetryPolicySchema, RouteMatchSchema, RouteSchema, VirtualHostSchema, WeightedClusterSchema } from "../../src/gen/envoy/config/route/v3/route_components_pb.ts";
import { RouterSchema } from "../../src/gen/envoy/extensions/filters/http/router/v3/router_pb.ts";
import {
  HttpConnectionManager_CodecType,
  HttpConnectionManagerSchema,
} from "../../src/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.ts";
import { TcpProxySchema } from "../../src/gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy_pb.ts";
import { FractionalPercentSchema, FractionalPercent_DenominatorType } from "../../src/gen/envoy/type/v3/percent_pb.ts";
import { envoyRegistry, validateAny, validateMessage, type Violation } from "../../src/validate/pgv.ts";

const registry = envoyRegistry();

/** The plain-object form of a message init (not an already-built message), so fixtures can be spread. */
type Init<D extends DescMessage> = Exclude<MessageInitShape<D>, Message>;

function sockAddr(address: string, port: number): Init<typeof AddressSchema> {
  return { address: { case: "socketAddress", value: { address, portSpecifier: { case: "portValue", value: port } } } };
}

function validCluster(): Init<typeof ClusterSchema> {
  return {
    name: "outbound|8080||orders",
    clusterDiscoveryType: { case: "type", value: Cluster_DiscoveryType.EDS },
    edsClusterConfig: { edsConfig: { configSourceSpecifier: { case: "ads", value: {} } }, serviceName: "orders" },
    connectTimeout: { seconds: 5n },
    lbPolicy: Cluster_LbPolicy.LEAST_REQUEST,
    circuitBreakers: { thresholds: [{ maxConnections: 1024, maxRetries: 3 }] },
    outlierDetection: { consecutive5xx: 5, interval: { seconds: 10n }, maxEjectionPercent: 50 },
    commonLbConfig: { healthyPanicThreshold: { value: 50 } },
  };
}

function validLoadAssignment(): Init<typeof ClusterLoadAssignmentSchema> {
  return {
    clusterName: "outbound|8080||orders",
    endpoints: [
      {
        locality: { region: "eu-west-1", zone: "eu-west-1a" },
        loadBalancingWeight: 100,
        lbEndpoints: [
          { hostIdentifier: { case: "endpoint", value: { address: sockAddr("10.0.0.7", 8080) } }, loadBalancingWeight: 10 },
          { hostIdentifier: { case: "endpoint", value: { address: sockAddr("10.0.0.8", 8080) } } },
        ],
      },
    ],
    policy: { overprovisioningFactor: 140 },
  };
}

function validRouteConfig(): Init<typeof RouteConfigurationSchema> {
  return {
    name: "outbound_http",
    virtualHosts: [
      {
        name: "orders",
        domains: ["orders", "orders.service.consul", "orders:8080"],
        routes: [
          {
            name: "canary-by-header",
            match: {
              pathSpecifier: { case: "prefix", value: "/" },
              headers: [{ name: "x-canary", headerMatchSpecifier: { case: "presentMatch", value: true } }],
            },
            action: {
              case: "route",
              value: {
                clusterSpecifier: {
                  case: "weightedClusters",
                  value: { clusters: [{ name: "orders-v1", weight: 90 }, { name: "orders-v2", weight: 10 }] },
                },
                timeout: { seconds: 15n },
                retryPolicy: { retryOn: "5xx,reset", numRetries: 2, perTryTimeout: { nanos: 500_000_000 } },
              },
            },
          },
          {
            match: { pathSpecifier: { case: "prefix", value: "/" } },
            action: { case: "route", value: { clusterSpecifier: { case: "cluster", value: "outbound|8080||orders" } } },
          },
        ],
      },
    ],
  };
}

function hcm(init: Init<typeof HttpConnectionManagerSchema>) {
  return create(HttpConnectionManagerSchema, init);
}

function validHcm(): Init<typeof HttpConnectionManagerSchema> {
  return {
    statPrefix: "outbound_http",
    codecType: HttpConnectionManager_CodecType.AUTO,
    routeSpecifier: { case: "rds", value: { routeConfigName: "outbound_http", configSource: { configSourceSpecifier: { case: "ads", value: {} } } } },
    httpFilters: [{ name: "envoy.filters.http.router", configType: { case: "typedConfig", value: anyPack(RouterSchema, create(RouterSchema)) } }],
  };
}

function listenerWith(hcmMessage: ReturnType<typeof hcm>): Init<typeof ListenerSchema> {
  return {
    name: "outbound_http_15001",
    address: sockAddr("127.0.0.1", 15001),
    filterChains: [
      {
        filters: [
          {
            name: "envoy.filters.network.http_connection_manager",
            configType: { case: "typedConfig", value: anyPack(HttpConnectionManagerSchema, hcmMessage) },
          },
        ],
      },
    ],
  };
}

function check<D extends DescMessage>(schema: D, init: MessageInitShape<D>): Violation[] {
  return validateMessage(schema, create(schema, init), registry);
}

describe("valid, realistic resources", () => {
  it("Cluster, ClusterLoadAssignment, RouteConfiguration and Listener pass with no violations", () => {
    expect(check(ClusterSchema, validCluster())).toEqual([]);
    expect(check(ClusterLoadAssignmentSchema, validLoadAssignment())).toEqual([]);
    expect(check(RouteConfigurationSchema, validRouteConfig())).toEqual([]);
    expect(check(ListenerSchema, listenerWith(hcm(validHcm())))).toEqual([]);
  });

  it("a TCP listener with an inline route config in its HCM passes too", () => {
    const tcp = create(TcpProxySchema, { statPrefix: "tcp_db", clusterSpecifier: { case: "cluster", value: "outbound|5432||db" } });
    const listener = create(ListenerSchema, {
      name: "db_5432",
      address: sockAddr("0.0.0.0", 5432),
      filterChains: [{ filters: [{ name: "envoy.filters.network.tcp_proxy", configType: { case: "typedConfig", value: anyPack(TcpProxySchema, tcp) } }] }],
    });
    expect(validateMessage(ListenerSchema, listener, registry)).toEqual([]);
    const inline = hcm({ ...validHcm(), routeSpecifier: { case: "routeConfig", value: validRouteConfig() } });
    expect(check(ListenerSchema, listenerWith(inline))).toEqual([]);
  });
});

describe("rule families on Envoy messages", () => {
  const cases: {
    name: string;
    run: () => Violation[];
    path: string;
    rule: string;
    message: RegExp;
  }[] = [
    {
      name: "string.min_len: Cluster with an empty name",
      run: () => check(ClusterSchema, { ...validCluster(), name: "" }),
      path: "name",
      rule: "string.min_len",
      message: /value length must be at least 1 characters, got 0 \(""\)/,
    },
    {
      name: "duration.gt: Cluster.connect_timeout negative",
      run: () => check(ClusterSchema, { ...validCluster(), connectTimeout: { seconds: -1n } }),
      path: "connect_timeout",
      rule: "duration.gt",
      message: /^value must be greater than 0s, got -1s$/,
    },
    {
      name: "duration.gt: Cluster.connect_timeout zero",
      run: () => check(ClusterSchema, { ...validCluster(), connectTimeout: {} }),
      path: "connect_timeout",
      rule: "duration.gt",
      message: /greater than 0s, got 0s/,
    },
    {
      name: "duration: invalid duration (mixed signs)",
      run: () => check(ClusterSchema, { ...validCluster(), connectTimeout: { seconds: 1n, nanos: -5 } }),
      path: "connect_timeout",
      rule: "duration",
      message: /valid duration.*different signs/,
    },
    {
      name: "enum.defined_only: Cluster.lb_policy not a defined value",
      run: () => check(ClusterSchema, { ...validCluster(), lbPolicy: 42 as Cluster_LbPolicy }),
      path: "lb_policy",
      rule: "enum.defined_only",
      message: /defined values of enum envoy\.config\.cluster\.v3\.Cluster\.LbPolicy, got 42/,
    },
    {
      name: "enum.defined_only inside a oneof (Cluster.type)",
      run: () => check(ClusterSchema, { ...validCluster(), clusterDiscoveryType: { case: "type", value: 99 as Cluster_DiscoveryType } }),
      path: "type",
      rule: "enum.defined_only",
      message: /got 99/,
    },
    {
      name: "uint32.gte on a UInt32Value wrapper: endpoint load_balancing_weight 0",
      run: () => {
        const cla = validLoadAssignment();
        cla.endpoints![0]!.lbEndpoints![0]!.loadBalancingWeight = 0;
        return check(ClusterLoadAssignmentSchema, cla);
      },
      path: "endpoints[0].lb_endpoints[0].load_balancing_weight",
      rule: "uint32.gte",
      message: /^value must be greater than or equal to 1, got 0$/,
    },
    {
      name: "uint32.lte: port above 65535",
      run: () => check(ClusterLoadAssignmentSchema, {
        clusterName: "c",
        endpoints: [{ lbEndpoints: [{ hostIdentifier: { case: "endpoint", value: { address: sockAddr("10.0.0.1", 70000) } } }] }],
      }),
      path: "endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value",
      rule: "uint32.lte",
      message: /less than or equal to 65535, got 70000/,
    },
    {
      name: "uint32.gt on a wrapper: overprovisioning_factor 0",
      run: () => check(ClusterLoadAssignmentSchema, { ...validLoadAssignment(), policy: { overprovisioningFactor: 0 } }),
      path: "policy.overprovisioning_factor",
      rule: "uint32.gt",
      message: /greater than 0, got 0/,
    },
    {
      name: "double range (gte+lte inside range): outlier detection / percent",
      run: () => check(ClusterSchema, { ...validCluster(), commonLbConfig: { healthyPanicThreshold: { value: 150 } } }),
      path: "common_lb_config.healthy_panic_threshold.value",
      rule: "double.lte",
      message: /inside range \[0, 100\], got 150/,
    },
    {
      name: "repeated.min_items: virtual host with no domains",
      run: () => {
        const rc = validRouteConfig();
        rc.virtualHosts![0]!.domains = [];
        return check(RouteConfigurationSchema, rc);
      },
      path: "virtual_hosts[0].domains",
      rule: "repeated.min_items",
      message: /at least 1 item\(s\), but it has 0/,
    },
    {
      name: "repeated.items HTTP_HEADER_VALUE (loose): a domain with a newline",
      run: () => {
        const rc = validRouteConfig();
        rc.virtualHosts![0]!.domains = ["orders", "evil\r\nhost"];
        return check(RouteConfigurationSchema, rc);
      },
      path: "virtual_hosts[0].domains[1]",
      rule: "repeated.items.string.well_known_regex",
      message: /valid HTTP header value \(loose: no NUL, CR or LF\), got "evil\\r\\nhost"/,
    },
    {
      name: "HTTP_HEADER_NAME (loose): header matcher with an invalid header name",
      run: () => check(HeaderMatcherSchema, { name: "x-user\nid", headerMatchSpecifier: { case: "presentMatch", value: true } }),
      path: "name",
      rule: "string.well_known_regex",
      message: /valid HTTP header name/,
    },
    {
      name: "HTTP_HEADER_NAME (strict): override_auto_sni_header with a space",
      run: () => check(UpstreamHttpProtocolOptionsSchema, { overrideAutoSniHeader: "x sni" }),
      path: "override_auto_sni_header",
      rule: "string.well_known_regex",
      message: /^value must be a valid HTTP header name, got "x sni"$/,
    },
    {
      name: "oneof required: RouteMatch without a path specifier",
      run: () => check(RouteSchema, { match: {}, action: { case: "route", value: { clusterSpecifier: { case: "cluster", value: "c" } } } }),
      path: "match.path_specifier",
      rule: "oneof.required",
      message: /exactly one field of oneof path_specifier must be set \(one of: prefix, path, safe_regex, .*\), but none is/,
    },
    {
      name: "string.pattern: path_separated_prefix ending in a slash",
      run: () => check(RouteMatchSchema, { pathSpecifier: { case: "pathSeparatedPrefix", value: "/api/" } }),
      path: "path_separated_prefix",
      rule: "string.pattern",
      message: /^value must match the regular expression "\^\[\^\?#\]\+\[\^\?#\/\]\$", got "\/api\/"$/,
    },
    {
      name: "message.required: Route without a match",
      run: () => check(RouteSchema, { action: { case: "route", value: { clusterSpecifier: { case: "cluster", value: "c" } } } }),
      path: "match",
      rule: "message.required",
      message: /value is required/,
    },
    {
      name: "oneof required in an Any payload: HCM without route_specifier inside a Listener",
      run: () => {
        const bad = hcm({ ...validHcm(), routeSpecifier: { case: undefined } });
        return check(ListenerSchema, listenerWith(bad));
      },
      path: "filter_chains[0].filters[0].typed_config.route_specifier",
      rule: "oneof.required",
      message: /oneof route_specifier must be set \(one of: rds, route_config, scoped_routes\)/,
    },
    {
      name: "deep path through an Any: inline route config with an empty virtual host domain list",
      run: () => {
        const rc = validRouteConfig();
        rc.virtualHosts!.push({ name: "payments", domains: [], routes: [] });
        return check(ListenerSchema, listenerWith(hcm({ ...validHcm(), routeSpecifier: { case: "routeConfig", value: rc } })));
      },
      path: "filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[1].domains",
      rule: "repeated.min_items",
      message: /at least 1 item/,
    },
    {
      name: "string.min_len in list items: HTTP filter with an empty name",
      run: () => check(HttpConnectionManagerSchema, { ...validHcm(), httpFilters: [{ name: "" }] }),
      path: "http_filters[0].name",
      rule: "string.min_len",
      message: /at least 1 characters/,
    },
    {
      name: "enum.defined_only in an Any payload: HCM codec_type",
      run: () => check(ListenerSchema, listenerWith(hcm({ ...validHcm(), codecType: 7 as HttpConnectionManager_CodecType }))),
      path: "filter_chains[0].filters[0].typed_config.codec_type",
      rule: "enum.defined_only",
      message: /got 7/,
    },
    {
      name: "string.min_len on a map key (typed_filter_metadata key empty)",
      run: () => check(ClusterSchema, { ...validCluster(), metadata: { typedFilterMetadata: { "": anyPack(DurationSchema, create(DurationSchema)) } } }),
      path: 'metadata.typed_filter_metadata[""]',
      rule: "map.keys.string.min_len",
      message: /at least 1 characters, got 0/,
    },
    {
      name: "repeated.min_items on messages: weighted clusters with no clusters",
      run: () => check(WeightedClusterSchema, { clusters: [] }),
      path: "clusters",
      rule: "repeated.min_items",
      message: /at least 1 item\(s\), but it has 0/,
    },
    {
      name: "enum.defined_only: FractionalPercent denominator",
      run: () => check(FractionalPercentSchema, { numerator: 1, denominator: 9 as FractionalPercent_DenominatorType }),
      path: "denominator",
      rule: "enum.defined_only",
      message: /got 9/,
    },
    {
      name: "duration.gt with nanos: dns_failure_refresh_rate.base_interval of 500ns (must exceed 1ms)",
      run: () => check(ClusterSchema, { ...validCluster(), dnsFailureRefreshRate: { baseInterval: { nanos: 500 } } }),
      path: "dns_failure_refresh_rate.base_interval",
      rule: "duration.gt",
      message: /^value must be greater than 0\.001s, got 0\.000000500s$/,
    },
    {
      name: "duration.required: dns_failure_refresh_rate without base_interval",
      run: () => check(ClusterSchema, { ...validCluster(), dnsFailureRefreshRate: { maxInterval: { seconds: 1n } } }),
      path: "dns_failure_refresh_rate.base_interval",
      rule: "duration.required",
      message: /value is required/,
    },
    {
      name: "duration.gt: retry back-off base_interval of zero",
      run: () => check(RetryPolicySchema, { retryBackOff: { baseInterval: {} } }),
      path: "retry_back_off.base_interval",
      rule: "duration.gt",
      message: /greater than 0s, got 0s/,
    },
  ];

  for (const c of cases) {
    it(c.name, () => {
      const vs = c.run();
      const v = vs.find((x) => x.path === c.path && x.rule === c.rule);
      expect(v, `violations: ${JSON.stringify(vs, null, 2)}`).toBeDefined();
      expect(v!.message).toMatch(c.message);
    });
  }

  it("Any rules with only `required` on a non-Any message (ExtensionConfigSource.config_source) mean: must be set", () => {
    const typeUrls = ["type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"];
    expect(check(ExtensionConfigSourceSchema, { typeUrls }).map((v) => `${v.path} ${v.rule}`)).toEqual(["config_source any.required"]);
    expect(check(ExtensionConfigSourceSchema, { typeUrls, configSource: {} }).map((v) => `${v.path} ${v.rule}`)).toEqual([
      "config_source.config_source_specifier oneof.required",
    ]);
    expect(check(ExtensionConfigSourceSchema, { typeUrls, configSource: { configSourceSpecifier: { case: "ads", value: {} } } })).toEqual([]);
  });

  it("string.pattern accepts a matching value", () => {
    expect(check(RouteMatchSchema, { pathSpecifier: { case: "pathSeparatedPrefix", value: "/api" } })).toEqual([]);
  });

  it("only the broken field is reported", () => {
    expect(check(ClusterSchema, { ...validCluster(), name: "" })).toEqual([
      { path: "name", rule: "string.min_len", message: 'value length must be at least 1 characters, got 0 ("")' },
    ]);
  });

  it("unset optional messages are not validated, only checked for required", () => {
    // SocketAddress.address has min_len 1, but an unset Address is just absent.
    expect(check(LbEndpointSchema, { hostIdentifier: { case: "endpoint", value: {} } })).toEqual([]);
    // An unset wrapper with gte 1 is fine; a set one is checked.
    expect(check(LbEndpointSchema, {})).toEqual([]);
    expect(check(LbEndpointSchema, { loadBalancingWeight: 1 })).toEqual([]);
  });

  it("proto3 scalars at their zero value are still checked (min_len on an empty string)", () => {
    const vs = check(SocketAddressSchema, { portSpecifier: { case: "portValue", value: 80 } });
    expect(vs.map((v) => `${v.path} ${v.rule}`)).toEqual(["address string.min_len"]);
  });

  it("ignore_empty skips an empty string but still checks a non-empty one", () => {
    expect(check(UpstreamHttpProtocolOptionsSchema, { overrideAutoSniHeader: "" })).toEqual([]);
    expect(check(UpstreamHttpProtocolOptionsSchema, { overrideAutoSniHeader: "x-sni" })).toEqual([]);
  });

  it("without a registry, Any payloads are not inspected", () => {
    const bad = create(ListenerSchema, listenerWith(hcm({ ...validHcm(), routeSpecifier: { case: undefined } })));
    expect(validateMessage(ListenerSchema, bad)).toEqual([]);
    expect(validateMessage(ListenerSchema, bad, registry)).toHaveLength(1);
  });

  it("an undecodable Any payload is reported", () => {
    const listener = create(ListenerSchema, listenerWith(hcm(validHcm())));
    const filter = listener.filterChains[0]!.filters[0]!;
    if (filter.configType.case !== "typedConfig") throw new Error("fixture");
    filter.configType.value.value = new Uint8Array([0x0a, 0xff]); // length-delimited, truncated
    const vs = validateMessage(ListenerSchema, listener, registry);
    expect(vs).toHaveLength(1);
    expect(vs[0]!.rule).toBe("any.unpack");
    expect(vs[0]!.path).toBe("filter_chains[0].filters[0].typed_config");
  });

  it("reports every violation in one pass, each with its own path", () => {
    const cla = validLoadAssignment();
    cla.clusterName = "";
    cla.endpoints![0]!.lbEndpoints![1]!.loadBalancingWeight = 0;
    cla.endpoints![0]!.priority = 200;
    const vs = check(ClusterLoadAssignmentSchema, cla);
    expect(vs.map((v) => v.path).sort()).toEqual([
      "cluster_name",
      "endpoints[0].lb_endpoints[1].load_balancing_weight",
      "endpoints[0].priority",
    ]);
  });
});

describe("validateAny", () => {
  it("unpacks a resource by type URL and validates it", () => {
    const good = anyPack(ClusterSchema, create(ClusterSchema, validCluster()));
    expect(validateAny(good, registry)).toEqual([]);
    const bad = anyPack(ClusterSchema, create(ClusterSchema, { ...validCluster(), connectTimeout: { seconds: -2n } }));
    expect(validateAny(bad, registry)).toEqual([
      { path: "connect_timeout", rule: "duration.gt", message: "value must be greater than 0s, got -2s" },
    ]);
  });

  it("validates nested Anys (a Listener resource carrying an HCM)", () => {
    const listener = create(ListenerSchema, listenerWith(hcm({ ...validHcm(), statPrefix: "" })));
    const vs = validateAny(anyPack(ListenerSchema, listener), registry);
    expect(vs.map((v) => `${v.path} ${v.rule}`)).toEqual(["filter_chains[0].filters[0].typed_config.stat_prefix string.min_len"]);
  });

  it("reports a type URL the registry does not know", () => {
    const vs = validateAny({ $typeName: "google.protobuf.Any", typeUrl: "type.googleapis.com/acme.Unknown", value: new Uint8Array() }, registry);
    expect(vs).toHaveLength(1);
    expect(vs[0]!.rule).toBe("any.type_url");
  });

  it("wrapper rules read the wrapped value", () => {
    // Directly validating a bare wrapper has no rules: the rule lives on the field.
    expect(validateMessage(UInt32ValueSchema, create(UInt32ValueSchema, { value: 0 }))).toEqual([]);
    expect(check(VirtualHostSchema, { name: "v", domains: ["*"], retryPolicy: { numRetries: 0 } })).toEqual([]);
  });
});

describe("shared sub-messages", () => {
  // The validator remembers objects of the types the caller says it shares
  // (translation shares virtual hosts between route configurations); a broken
  // shared message must still be reported at every place it appears, and a
  // clean one must not hide a broken sibling.
  const shared = new Set([VirtualHostSchema.typeName]);
  it("a broken virtual host shared by two route configurations is reported in both, at its position", () => {
    const broken = create(VirtualHostSchema, { name: "", domains: ["a"] });
    const good = create(VirtualHostSchema, { name: "ok", domains: ["b"] });
    const first = create(RouteConfigurationSchema, { name: "one", virtualHosts: [good, broken] });
    const second = create(RouteConfigurationSchema, { name: "two", virtualHosts: [broken] });
    expect(validateMessage(RouteConfigurationSchema, first, undefined, shared).map((v) => v.path)).toEqual(["virtual_hosts[1].name"]);
    expect(validateMessage(RouteConfigurationSchema, second, undefined, shared).map((v) => v.path)).toEqual(["virtual_hosts[0].name"]);
    expect(validateMessage(RouteConfigurationSchema, first, undefined, shared).map((v) => v.path)).toEqual(["virtual_hosts[1].name"]);
  });

  it("a clean shared virtual host does not excuse the configuration holding it", () => {
    const good = create(VirtualHostSchema, { name: "ok", domains: ["b"] });
    expect(validateMessage(RouteConfigurationSchema, create(RouteConfigurationSchema, { name: "one", virtualHosts: [good] }), undefined, shared)).toEqual([]);
    const withBadField = create(RouteConfigurationSchema, { name: "two", virtualHosts: [good], internalOnlyHeaders: ["bad\nheader"] });
    expect(validateMessage(RouteConfigurationSchema, withBadField, undefined, shared).map((v) => v.path)).toEqual(["internal_only_headers[0]"]);
  });

  it("walks a clean object again unless its type is named shared", () => {
    // Shared objects are never mutated; mutating one here shows whether it was walked again.
    const host = create(VirtualHostSchema, { name: "ok", domains: ["b"] });
    const config = (name: string) => create(RouteConfigurationSchema, { name, virtualHosts: [host] });
    expect(validateMessage(RouteConfigurationSchema, config("one"), undefined, shared)).toEqual([]);
    host.name = "";
    expect(validateMessage(RouteConfigurationSchema, config("two"), undefined, shared)).toEqual([]);
    expect(validateMessage(RouteConfigurationSchema, config("three")).map((v) => v.path)).toEqual(["virtual_hosts[0].name"]);
  });
});
