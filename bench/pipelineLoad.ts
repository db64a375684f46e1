// Child process of the pipeline benchmark: the fleet's /metrics and the OTLP load client live here,
// and the downstream sink in a child of its own, so the parent's CPU time is cachelens alone.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Client, credentials } from '@grpc/grpc-js';
import { MetricsServer } from '../test/support/metricsServer.ts';
import { demoModelState, renderVllmExposition } from '../src/demo/vllmExposition.ts';
import { VllmLoad } from './vllmLoad.ts';

const sinkChild = fork(fileURLToPath(new URL('./pipelineSink.ts', import.meta.url)), [], {
  execArgv: ['--import', 'tsx'],
});
let received = 0;
const sinkPort = await new Promise<number>((resolve) =>
  sinkChild.on('message', (m: { sinkPort?: number; received?: number }) => {
    if (m.sinkPort) resolve(m.sinkPort);
    if (m.received !== undefined) received = m.received;
  }),
);
const fleet = await new MetricsServer().start();
let n = 0;
fleet.serve('/metrics', () => renderVllmExposition([demoModelState('llama', 1 + n++ / 100)], { histograms: false }));
process.send!({ sinkPort, metricsUrl: fleet.url('/metrics') });

process.on(
  'message',
  async (msg: {
    transport: 'grpc' | 'http';
    port: number;
    requests: number;
    concurrency: number;
    spansPerRequest: number;
    ratePerS?: number;
    /** Send for this long instead of a number of requests (the benchmark's cases run at least 20 s). */
    durationS?: number;
  }) => {
    if ((msg as unknown as { stop?: boolean }).stop) {
      sinkChild.send({ stop: true });
      await new Promise((r) => sinkChild.once('exit', r));
      await fleet.stop();
      process.exit(0);
    }
    const load = new VllmLoad(msg.spansPerRequest, { 'service.instance.id': 'vllm-a' });
    const client = new Client(`127.0.0.1:${msg.port}`, credentials.createInsecure());
    const sendOne = (): Promise<void> => {
      const body = load.next();
      if (msg.transport === 'http')
        return fetch(`http://127.0.0.1:${msg.port}/v1/traces`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-protobuf' },
          body,
        }).then((r) => void r.arrayBuffer());
      return new Promise((resolve, reject) =>
        client.makeUnaryRequest(
          '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
          (b: Buffer) => b,
          (b: Buffer) => b,
          body,
          (err) => (err ? reject(err) : resolve()),
        ),
      );
    };
    const start = received;
    let next = 0;
    const t0 = Date.now();
    const stopAt = msg.durationS ? t0 + msg.durationS * 1000 : Number.POSITIVE_INFINITY;
    const worker = async (): Promise<void> => {
      while (next < msg.requests && Date.now() < stopAt) {
        const i = next++;
        // Paced mode: request i leaves at its slot, to measure latency below saturation.
        if (msg.ratePerS) {
          const at = t0 + (i * 1000) / msg.ratePerS;
          if (at > Date.now()) await new Promise((r) => setTimeout(r, at - Date.now()));
        }
        await sendOne();
      }
    };
    await Promise.all(Array.from({ length: msg.concurrency }, worker));
    const target = start + next * msg.spansPerRequest;
    while (received < target) await new Promise((r) => setTimeout(r, 5));
    client.close();
    process.send!({ done: true, received: received - start });
  },
);
