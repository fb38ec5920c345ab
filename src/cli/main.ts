import { Command, InvalidArgumentError, Option } from "commander";
import { pino } from "pino";
import { envoyBootstrap, grpcBootstrap } from "./bootstrap.ts";
import { stopWhenParentDies } from "./node-flags.ts";
import { serve } from "./serve.ts";

/** The `signalbox` command line. Wiring only: parse, then call into the app. */

function port(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 0 || parsed > 65535) throw new InvalidArgumentError("must be a port number");
  return parsed;
}

function millis(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 0) throw new InvalidArgumentError("must be milliseconds (an integer >= 0)");
  return parsed;
}

const program = new Command()
  .name("signalbox")
  .description("xDS control plane for Envoy sidecars and proxyless gRPC, configured through PostgreSQL tables");

program
  .command("serve")
  .description("run the control plane")
  .addOption(new Option("--database-url <url>", "PostgreSQL URL; omit to use the embedded store").env("DATABASE_URL"))
  .addOption(new Option("--data-dir <dir>", "where the embedded store keeps its data").env("SIGNALBOX_DATA_DIR").default(".data"))
  .addOption(new Option("--xds-host <host>", "xDS bind address").default("0.0.0.0"))
  .addOption(new Option("--xds-port <port>", "xDS (ADS) gRPC port").env("SIGNALBOX_XDS_PORT").argParser(port).default(18000))
  .addOption(new Option("--admin-host <host>", "admin HTTP bind address").default("0.0.0.0"))
  .addOption(new Option("--admin-port <port>", "admin HTTP port").env("SIGNALBOX_ADMIN_PORT").argParser(port).default(19000))
  .addOption(new Option("--consul-addr <url>", "Consul HTTP address; enables Consul discovery").env("CONSUL_HTTP_ADDR"))
  .addOption(new Option("--consul-token <token>", "Consul ACL token").env("CONSUL_HTTP_TOKEN"))
  .addOption(new Option("--consul-datacenter <dc>", "Consul datacenter to read").env("CONSUL_DATACENTER"))
  .addOption(new Option("--consul-wait <duration>", "longest a Consul blocking query waits (e.g. 30s)"))
  .addOption(
    new Option("--consul-max-watches <n>", "Consul health queries in flight at once (connections <= n + 2)").argParser(
      (value: string) => {
        const parsed = Number(value);
        if (!Number.isInteger(parsed) || parsed < 1) throw new InvalidArgumentError("must be a positive integer");
        return parsed;
      },
    ),
  )
  .addOption(new Option("--debounce-ms <ms>", "quiet time that ends a burst of changes").argParser(millis).default(50))
  .addOption(new Option("--max-delay-ms <ms>", "longest a change waits for a burst to end").argParser(millis).default(250))
  .addOption(new Option("--log-level <level>", "pino log level").env("LOG_LEVEL").default("info"))
  .action(async (options) => {
    const logger = pino({ level: options.logLevel });
    logger.info({ node: process.version, nodeFlags: process.execArgv }, "starting signalbox");
    let running: Awaited<ReturnType<typeof serve>> | null = null;
    const shutdown = (signal: string) => {
      logger.info({ signal }, "shutting down");
      // Still starting: nothing is served yet, so stop as a signal's default would.
      if (!running) process.exit(1);
      running.stop().then(
        () => process.exit(0),
        (error: unknown) => {
          logger.error({ err: error }, "unclean shutdown");
          process.exit(1);
        },
      );
    };
    // Watched from the start: the launcher may die while this process is starting.
    stopWhenParentDies(shutdown);
    running = await serve(options, logger);
    process.once("SIGINT", () => shutdown("SIGINT"));
    process.once("SIGTERM", () => shutdown("SIGTERM"));
  });

program
  .command("bootstrap")
  .description("print a bootstrap file for an Envoy sidecar or a proxyless gRPC client")
  .requiredOption("--service <name>", "the service this proxy belongs to (node cluster)")
  .requiredOption("--node-id <id>", "the proxy's node id (usually the instance id)")
  .addOption(new Option("--format <format>", "bootstrap for").choices(["envoy", "grpc"]).default("envoy"))
  .option("--xds-address <host:port>", "Signalbox's xDS address", "127.0.0.1:18000")
  .option("--inbound-port <port>", "sidecar inbound listener port", port)
  .option("--app-port <port>", "local application port inbound traffic goes to", port)
  .option("--outbound-port <port>", "sidecar outbound HTTP listener port (default 15001)", port)
  .option("--envoy-admin-port <port>", "Envoy's own admin port (default 9901)", port)
  .action((options) => {
    const bootstrapOptions = {
      service: options.service,
      nodeId: options.nodeId,
      xdsAddress: options.xdsAddress,
      inboundPort: options.inboundPort,
      appPort: options.appPort,
      outboundPort: options.outboundPort,
      envoyAdminPort: options.envoyAdminPort,
    };
    const bootstrap = options.format === "grpc" ? grpcBootstrap(bootstrapOptions) : envoyBootstrap(bootstrapOptions);
    process.stdout.write(`${JSON.stringify(bootstrap, null, 2)}\n`);
  });

program.parseAsync(process.argv).catch((error: unknown) => {
  process.stderr.write(`signalbox: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
