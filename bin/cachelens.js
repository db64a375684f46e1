#!/usr/bin/env node
// Runs the TypeScript sources directly through tsx, so `npm ci` is the whole install (no build step).
import { register } from 'tsx/esm/api';

register();
const { runCli } = await import('../src/cli/main.ts');
await runCli(process.argv.slice(2));
