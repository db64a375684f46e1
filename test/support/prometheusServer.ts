import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { waitFor } from './pipelineHarness.ts';
import { freePort } from './ports.ts';

/** The real Prometheus from Debian's `prometheus` package, on 127.0.0.1 with a TSDB in `dir`. */
export class PrometheusServer {
  private proc?: ChildProcess;
  private log = '';
  port = 0;

  constructor(
    private readonly dir: string,
    private readonly config: Record<string, unknown>,
    private readonly flags: string[] = [],
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    this.port ||= await freePort();
    const file = join(this.dir, 'prometheus.yml');
    writeFileSync(file, toYaml(this.config));
    this.log = '';
    const proc = spawn(
      'prometheus',
      [
        `--config.file=${file}`,
        `--storage.tsdb.path=${join(this.dir, 'tsdb')}`,
        `--web.listen-address=127.0.0.1:${this.port}`,
        ...this.flags,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    this.proc = proc;
    proc.stderr!.on('data', (d) => (this.log = (this.log + d).slice(-6000)));
    await waitFor(
      () => proc.exitCode === null && this.log.includes('Server is ready to receive web requests'),
      `Prometheus ready (${this.log.slice(-300)})`,
      30_000,
    );
    return this;
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGTERM');
    });
  }
}
