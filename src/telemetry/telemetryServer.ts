import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { collectDefaultMetrics, type Registry } from 'prom-client';
import type { Logger } from './logger.ts';

/** prom-client's process_* and nodejs_* metrics on the registry the server serves. */
export function registerProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  // prom-client names these gauges *_total, which promtool's lint rejects (a _total suffix means counter).
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'])
    registry.removeSingleMetric(name);
}

export interface ReadinessCheck {
  name: string;
  /** undefined when fine; else why not, for the /readyz body and the log. */
  problem: () => string | undefined;
}

/** /metrics, /healthz (the process answers) and /readyz (every check passes) on one port. */
export class TelemetryServer {
  private server?: Server;
  port = 0;

  constructor(
    /** Where to listen, parsed from telemetry.endpoint by the caller. */
    private readonly listen: { host: string; port: number },
    private readonly registry: Registry,
    private readonly checks: readonly ReadinessCheck[],
    private readonly log: Logger,
  ) {}

  async start(): Promise<string> {
    const { host, port } = this.listen;
    this.server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      if (path === '/metrics') {
        this.registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
          (err: Error) => {
            this.log.error({ err: err.message }, 'collecting self-metrics failed');
            res.writeHead(500, { 'content-type': 'text/plain' }).end(`collecting metrics failed: ${err.message}\n`);
          },
        );
      } else if (path === '/healthz') {
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}\n');
      } else if (path === '/readyz') {
        const problems: Record<string, string> = {};
        for (const c of this.checks) {
          const p = c.problem();
          if (p) problems[c.name] = p;
        }
        const ready = Object.keys(problems).length === 0;
        res
          .writeHead(ready ? 200 : 503, { 'content-type': 'application/json' })
          .end(JSON.stringify(ready ? { status: 'ready' } : { status: 'not ready', problems }) + '\n');
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics, /healthz or /readyz\n');
      }
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', (err: NodeJS.ErrnoException) =>
        reject(new Error(`telemetry.endpoint ${host}:${port}: cannot listen (${err.code ?? err.message})`)),
      );
      this.server!.listen(port, host, () => resolve());
    });
    this.port = (this.server.address() as AddressInfo).port;
    return `${host}:${this.port}`;
  }

  async shutdown(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server!.close(() => r()));
  }
}
