import http from 'node:http';
import type { AddressInfo } from 'node:net';
import zlib from 'node:zlib';

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** A real HTTP server on 127.0.0.1 whose routes a test swaps at will. */
export class MetricsServer {
  private readonly routes = new Map<string, Handler>();
  readonly requests: Array<{ path: string; headers: http.IncomingHttpHeaders }> = [];
  private server = http.createServer((req, res) => {
    this.requests.push({ path: req.url ?? '', headers: req.headers });
    const h = this.routes.get(req.url ?? '');
    if (h) h(req, res);
    else {
      res.statusCode = 404;
      res.end('not found');
    }
  });
  port = 0;

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  route(path: string, h: Handler): void {
    this.routes.set(path, h);
  }

  /** Serves whatever `body()` returns at each request, like a live exporter. */
  serve(path: string, body: () => string, opts: { gzip?: boolean; contentType?: string } = {}): void {
    this.route(path, (req, res) => {
      const text = body();
      res.setHeader('Content-Type', opts.contentType ?? 'text/plain; version=0.0.4; charset=utf-8');
      if (opts.gzip && /gzip/.test(String(req.headers['accept-encoding']))) {
        res.setHeader('Content-Encoding', 'gzip');
        res.end(zlib.gzipSync(text));
      } else res.end(text);
    });
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
