// Child process of the pipeline benchmark: the downstream sink, the fleet's /metrics and the OTLP
// load client live here, so the parent's CPU time is cachelens alone.
import { Client, credentials } from '@grpc/grpc-js';
import { MetricsServer } from '../test/support/metricsServer.ts';
import { OtlpSink } from '../test/support/otlpSink.ts';
import { demoModelState, renderVllmExposition } from '../src/demo/vllmExposition.ts';
import { VllmLoad } from './vllmLoad.ts';

const sink = await new OtlpSink().start();
// Count spans without keeping decoded requests (memory of the child is not under test).
let received = 0;
sink.requests.push = (...items) => {
  for (const r of items) for (const rs of r.resourceSpans) for (const ss of rs.scopeSpans) received += ss.spans.length;
  return 0;
};
const fleet = await new MetricsServer().start();
let n = 0;
fleet.serve('/metrics', () => renderVllmExposition([demoModelState('llama', 1 + n++ / 100)], { histograms: false }));
process.send!({ sinkPort: sink.port, metricsUrl: fleet.url('/metrics') });

process.on('message', async (msg: { transport: 'grpc' | 'http'; port: number; requests: number; concurrency: number; spansPerRequest: number; ratePerS?: number }) => {
  if ((msg as unknown as { stop?: boolean }).stop) {
    await sink.stop();
    await fleet.stop();
    process.exit(0);
  }
  const load = new VllmLoad(msg.spansPerRequest, { 'service.instance.id': 'vllm-a' });
  const client = new Client(`127.0.0.1:${msg.port}`, credentials.createInsecure());
  const sendOne = (): Promise<void> => {
    const body = load.next();
    if (msg.transport === 'http') return fetch(`http://127.0.0.1:${msg.port}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body }).then((r) => void r.arrayBuffer());
    return new Promise((resolve, reject) => client.makeUnaryRequest('/opentelemetry.proto.collector.trace.v1.TraceService/Export', (b: Buffer) => b, (b: Buffer) => b, body, (err) => (err ? reject(err) : resolve())));
  };
  const start = received;
  let next = 0;
  const t0 = Date.now();
  const worker = async (): Promise<void> => {
    while (next < msg.requests) {
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
  const target = start + msg.requests * msg.spansPerRequest;
  while (received < target) await new Promise((r) => setTimeout(r, 5));
  client.close();
  process.send!({ done: true, received: received - start });
});
