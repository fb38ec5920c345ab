import { create } from "./create.ts";
import { anyPack, DurationSchema, type Any, type Duration } from "@bufbuild/protobuf/wkt";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { AddressSchema, type Address } from "../gen/envoy/config/core/v3/address_pb.ts";
import { ApiVersion, ConfigSourceSchema, type ConfigSource } from "../gen/envoy/config/core/v3/config_source_pb.ts";

/** Small builders shared by the per-kind translators. */

export function millis(ms: number): Duration {
  const seconds = Math.floor(ms / 1000);
  return create(DurationSchema, { seconds: BigInt(seconds), nanos: (ms - seconds * 1000) * 1_000_000 });
}

/** Every dynamic resource is fetched over the same ADS stream. */
export function adsConfigSource(): ConfigSource {
  return create(ConfigSourceSchema, {
    configSourceSpecifier: { case: "ads", value: {} },
    resourceApiVersion: ApiVersion.V3,
  });
}

export function socketAddress(address: string, port: number): Address {
  return create(AddressSchema, {
    address: { case: "socketAddress", value: { address, portSpecifier: { case: "portValue", value: port } } },
  });
}

export function pack<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): Any {
  return anyPack(schema, message);
}
