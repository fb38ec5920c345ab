#!/usr/bin/env node
// Runs the TypeScript CLI directly through tsx, so a fresh clone needs no build step.
import { register } from "tsx/esm/api";

register();
// `serve` runs in a child Node with the server's V8 flags, unless they are set already (node-flags.ts).
const { relaunchWithServerFlags } = await import("../src/cli/node-flags.ts");
if (!relaunchWithServerFlags(process.argv)) await import("../src/cli/main.ts");
