import { closeSync, openSync, statSync } from 'node:fs';

/**
 * Every file the config names (keys ending in `_file`, at any depth, in targets too), checked at
 * start: a missing or unreadable one is a one-line problem naming its key, not a crash at the first
 * request. file_sd paths are left out: Prometheus, too, waits for those to appear.
 */
export function checkConfigFiles(config: unknown): string[] {
  const problems: string[] = [];
  const walk = (v: unknown, path: string) => {
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${path}[${i}]`));
    else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        const key = path ? `${path}.${k}` : k;
        if (k.endsWith('_file') && typeof x === 'string' && x !== '') {
          const problem = unreadable(x);
          if (problem) problems.push(`${key}: ${x}: ${problem}`);
        } else walk(x, key);
      }
    }
  };
  walk(config, '');
  return problems;
}

function unreadable(path: string): string | undefined {
  try {
    if (!statSync(path).isFile()) return 'not a file';
    closeSync(openSync(path, 'r'));
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT'
      ? 'no such file'
      : code === 'EACCES'
        ? 'permission denied'
        : (code ?? (err as Error).message);
  }
}
