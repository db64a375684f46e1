// What the fleet and source benchmarks measure of a process, and how they start the daemon.
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

const CLK_TCK = 100;

/** User + system CPU seconds of a process, all its threads, from /proc. */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime + stime
}

export function rssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Node flags of the image's ENTRYPOINT (Dockerfile; test/compose.test.ts checks that they agree). */
export const IMAGE_NODE_FLAGS = ['--max-semi-space-size=8', '--max-old-space-size=1024'];
/** The environment the image sets (Dockerfile ENV; test/compose.test.ts checks that they agree). */
export const IMAGE_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' };

/** The image's environment under this process's (which wins), for every daemon a bench starts. */
export function daemonEnv(): NodeJS.ProcessEnv {
  return { ...IMAGE_ENV, ...process.env };
}

/** The image's Node flags, then BENCH_DAEMON_NODE_FLAGS (later flags win), for every daemon a bench starts. */
export function daemonNodeFlags(): string[] {
  return [...IMAGE_NODE_FLAGS, ...(process.env.BENCH_DAEMON_NODE_FLAGS?.split(' ').filter(Boolean) ?? [])];
}

/**
 * The real daemon (`bin/cachelens.js run`) on `config`, run as the image runs it. BENCH_DAEMON_NODE_FLAGS adds
 * Node flags, e.g. '--cpu-prof --cpu-prof-dir=/tmp/prof' to see where its CPU goes.
 */
export function spawnDaemon(config: string, env: NodeJS.ProcessEnv = daemonEnv()): ChildProcess {
  return spawn(
    process.execPath,
    [...daemonNodeFlags(), new URL('../bin/cachelens.js', import.meta.url).pathname, 'run', '--config', config],
    { stdio: ['ignore', 'inherit', 'inherit'], env },
  );
}
