import { spawnSync } from 'node:child_process';

/**
 * Whether a system tool a test needs is here. On a developer's machine a missing tool skips the test
 * with a reason that names the Debian package; under CI=true it fails instead, so CI can never pass
 * by skipping what .ci/run should have installed.
 */
export function toolSkip(
  command: string,
  args: string[],
  debianPackage: string,
  env?: NodeJS.ProcessEnv,
): string | false {
  const probe = spawnSync(command, args, { encoding: 'utf8', env, timeout: 60_000 });
  if (!probe.error && probe.status === 0) return false;
  const why = `${command} is missing (apt-get install ${debianPackage}; .ci/run installs it)`;
  if (process.env.CI === 'true') throw new Error(`CI=true and ${why}`);
  return why;
}
