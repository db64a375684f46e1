// Runs the simulated fleet for real: one HTTP server per instance serving vLLM-shaped /metrics,
// and each finished request sent as vLLM's `llm_request` span (under an API gateway span carrying
// the tenant) through the OpenTelemetry JS SDK over OTLP/gRPC, as vLLM's Python SDK would.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { context, SpanKind, trace, type Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { Fleet, SimInstance, SimRequest } from './fleetSim.ts';
import { renderVllmExposition } from './vllmExposition.ts';

export interface FleetServerOptions {
  /** Bind address of the /metrics servers. */
  host: string;
  /** First port; instance i listens on basePort + i. 0 picks free ports. */
  basePort: number;
  stepMs?: number;
  /** Called with every request that finished and was sent as a span. */
  onRequest?: (r: SimRequest) => void;
  onRestart?: (instance: string) => void;
}

export class FleetServer {
  private readonly servers: http.Server[] = [];
  private readonly providers: BasicTracerProvider[] = [];
  private tracers = new Map<string, Tracer>();
  private gateway?: Tracer;
  private timer?: NodeJS.Timeout;
  readonly urls: Array<{ instance: string; model: string; url: string }> = [];
  spansSent = 0;

  constructor(
    readonly fleet: Fleet,
    private readonly opts: FleetServerOptions,
  ) {}

  private serve(inst: SimInstance): http.RequestListener {
    return (req, res) => {
      // A restarting vLLM refuses connections; resetting the socket reads the same to a scraper.
      if (Date.now() < inst.downUntilMs) return req.socket.destroy();
      if (req.url !== '/metrics') {
        res.statusCode = 404;
        return res.end('not found; try /metrics\n');
      }
      res.setHeader('Content-Type', 'text/plain; version=0.0.4; charset=utf-8');
      res.end(renderVllmExposition([inst.counters], { created: true }));
    };
  }

  private tracer(url: string, resource: Record<string, string | number>): Tracer {
    const provider = new BasicTracerProvider({
      resource: resourceFromAttributes(resource),
      // vLLM batches spans too (SDK default 5 s); 1 s keeps the demo brisk.
      spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url }), { scheduledDelayMillis: 1000 })],
    });
    this.providers.push(provider);
    return provider.getTracer('vllm.tracing.otel');
  }

  /** Binds one /metrics server per instance; the fleet does not move until run(). */
  async start(): Promise<void> {
    for (const [i, inst] of this.fleet.instances.entries()) {
      const server = http.createServer(this.serve(inst));
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.opts.basePort ? this.opts.basePort + i : 0, this.opts.host, () => resolve());
      });
      this.servers.push(server);
      const { port } = server.address() as AddressInfo;
      const host = this.opts.host === '0.0.0.0' ? '127.0.0.1' : this.opts.host;
      this.urls.push({ instance: inst.spec.name, model: inst.spec.model, url: `http://${host}:${port}/metrics` });
    }
  }

  /** Starts the clock; finished requests go as spans to the OTLP/gRPC endpoint (cachelens), if given. */
  run(otlpEndpoint?: string): void {
    if (otlpEndpoint) {
      for (const [i, inst] of this.fleet.instances.entries()) {
        this.tracers.set(
          inst.spec.name,
          this.tracer(otlpEndpoint, {
            'service.name': 'vllm',
            'service.instance.id': inst.spec.name,
            'vllm.process_id': 1000 + i,
          }),
        );
      }
      this.gateway = this.tracer(otlpEndpoint, { 'service.name': 'api-gateway' });
    }
    this.fleet.begin(Date.now());
    this.timer = setInterval(() => this.tick(), this.opts.stepMs ?? 100);
  }

  private tick(): void {
    const { finished, restarted } = this.fleet.step(Date.now());
    for (const name of restarted) this.opts.onRestart?.(name);
    for (const r of finished) {
      this.emit(r);
      this.opts.onRequest?.(r);
    }
  }

  private emit(r: SimRequest): void {
    const vllm = this.tracers.get(r.instance);
    if (!vllm || !this.gateway || r.finishMs === undefined) return;
    const s = (ms: number | undefined) => ((ms ?? r.arrivalMs) - r.arrivalMs) / 1000;
    const gw = this.gateway.startSpan('POST /v1/chat/completions', {
      kind: SpanKind.SERVER,
      startTime: r.arrivalMs - 3,
      attributes: { 'tenant.id': r.tenant, 'http.request.method': 'POST', 'http.route': '/v1/chat/completions' },
    });
    // The attributes vLLM V1 sets in OutputProcessor.do_tracing (shared/research/inference-servers.md §2).
    const span = vllm.startSpan(
      'llm_request',
      {
        kind: SpanKind.SERVER,
        startTime: r.arrivalMs,
        attributes: {
          'gen_ai.request.id': r.id,
          'gen_ai.request.temperature': r.temperature,
          'gen_ai.request.top_p': r.topP,
          'gen_ai.request.max_tokens': r.maxTokens,
          'gen_ai.request.n': 1,
          'gen_ai.usage.prompt_tokens': r.promptTokens,
          'gen_ai.usage.completion_tokens': r.generated,
          'gen_ai.latency.time_in_queue': s(r.scheduledMs),
          'gen_ai.latency.time_to_first_token': s(r.firstTokenMs),
          'gen_ai.latency.e2e': s(r.finishMs),
          'gen_ai.latency.time_in_model_prefill': s(r.firstTokenMs) - s(r.scheduledMs),
          'gen_ai.latency.time_in_model_decode': s(r.finishMs) - s(r.firstTokenMs),
          'gen_ai.latency.time_in_model_inference': s(r.finishMs) - s(r.scheduledMs),
        },
      },
      trace.setSpan(context.active(), gw),
    );
    span.end(r.finishMs);
    gw.end(r.finishMs + 2);
    this.spansSent += 2;
  }

  /** Stops the clock and sends the spans still batched; /metrics stays up until close(). */
  async stopTraffic(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all(this.providers.map((p) => p.shutdown().catch(() => undefined)));
  }

  async close(): Promise<void> {
    await this.stopTraffic();
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    for (const s of this.servers) s.closeAllConnections();
  }
}
