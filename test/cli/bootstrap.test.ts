import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { fromJson } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import { BootstrapSchema } from "../../src/gen/envoy/config/bootstrap/v3/bootstrap_pb.ts";
import { envoyBootstrap, grpcBootstrap, splitHostPort } from "../../src/cli/bootstrap.ts";
import { parseProxy } from "../../src/xds/node.ts";
import { envoyRegistry, validateMessage } from "../../src/validate/pgv.ts";
import { create } from "@bufbuild/protobuf";
import { NodeSchema } from "../../src/gen/envoy/config/core/v3/base_pb.ts";

const run = promisify(execFile);
const registry = envoyRegistry();

describe("signalbox bootstrap", () => {
  it("prints an Envoy bootstrap that parses as envoy.config.bootstrap.v3.Bootstrap and passes its validation", async () => {
    const { stdout } = await run(process.execPath, [
      "bin/signalbox.js",
      "bootstrap",
      "--service",
      "checkout",
      "--node-id",
      "checkout-1",
      "--xds-address",
      "signalbox.internal:18000",
      "--inbound-port",
      "15006",
      "--app-port",
      "9090",
    ]);
    const bootstrap = fromJson(BootstrapSchema, JSON.parse(stdout), { registry });
    expect(validateMessage(BootstrapSchema, bootstrap, registry)).toEqual([]);
    expect(bootstrap.node?.cluster).toBe("checkout");
    expect(bootstrap.dynamicResources?.adsConfig?.grpcServices[0]?.targetSpecifier).toMatchObject({
      case: "envoyGrpc",
      value: { clusterName: "signalbox_xds" },
    });
    // What the bootstrap puts in the node is what the server reads back.
    const node = bootstrap.node ?? create(NodeSchema);
    node.userAgentName = "envoy";
    const proxy = parseProxy(node);
    expect(proxy).toMatchObject({ service: "checkout", kind: "envoy", inboundPort: 15006, appPort: 9090, outboundPort: 15001 });
  });

  it("prints a gRPC bootstrap with the xDS server and node", async () => {
    const { stdout } = await run(process.execPath, [
      "bin/signalbox.js",
      "bootstrap",
      "--service",
      "frontend",
      "--node-id",
      "fe-1",
      "--format",
      "grpc",
    ]);
    expect(JSON.parse(stdout)).toEqual(grpcBootstrap({ service: "frontend", nodeId: "fe-1", xdsAddress: "127.0.0.1:18000" }));
    expect(JSON.parse(stdout).xds_servers[0].server_uri).toBe("127.0.0.1:18000");
  });

  it("refuses a malformed --xds-address with a clear message", async () => {
    await expect(
      run(process.execPath, ["bin/signalbox.js", "bootstrap", "--service", "a", "--node-id", "b", "--xds-address", "nohost"]),
    ).rejects.toMatchObject({ stderr: expect.stringContaining('--xds-address must be host:port, got "nohost"') });
    expect(() => splitHostPort("[::1]:18000")).not.toThrow();
    expect(() => envoyBootstrap({ service: "a", nodeId: "b", xdsAddress: "h:0" })).toThrow(/host:port/);
  });
});
