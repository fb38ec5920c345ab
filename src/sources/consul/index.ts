export { ConsulRegistrySource, type ConsulSourceStats } from "./source.ts";
export {
  type ConsulFlags,
  type ConsulSourceOptions,
  consulDefaults,
  consulOptionsFromConfig,
  parseDuration,
} from "./config.ts";
export { registerConsulMetrics } from "./metrics.ts";
export { checkVerdict, mapService, metaKeys } from "./mapping.ts";
