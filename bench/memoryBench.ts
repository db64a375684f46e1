// Issue 19's memory goal as the image runs it: the real compiled daemon (bin/cachelens.js, its own process, the
// image's Node flags) at a fixed rate of vLLM request spans, enrichment on, forwarding to a gRPC sink. RSS idle
// and at each rate (maximum of 1 s samples), the daemon's CPU over the same window, and where the memory sits
// at the end (V8's heap, Buffers) from its own /metrics.
import { Server, ServerCredentials, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';
import { TRACE_SERVICE } from '../src/pipeline/receivers/grpcReceiver.ts';
import { AckingClient, DaemonProcess, growingFleet, SpanDriver } from '../reliability/lib.ts';
import { cpuSeconds, sleep } from './processes.ts';

const TARGETS = 4;
const BATCH = 200;
const WORKERS = 4;

export async function runMemoryBench(rates: number[], seconds: number): Promise<Record<string, unknown>> {
  const fleet = await growingFleet(TARGETS);
  let received = 0;
  const sink = new Server({ 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
  sink.addService(TRACE_SERVICE, {
    Export: (call: ServerUnaryCall<Buffer, Buffer>, cb: sendUnaryData<Buffer>) => {
      received += call.request.length;
      cb(null, Buffer.alloc(0));
    },
  });
  const sinkPort = await new Promise<number>((resolve, reject) =>
    sink.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
  );
  const d = await new DaemonProcess({
    scrape: {
      interval: '1s',
      timeout: '500ms',
      targets: fleet.targets,
    },
    exporter: { endpoint: `http://127.0.0.1:${sinkPort}` },
  }).init();
  d.start();
  try {
    await d.ready();
    await sleep(3000);
    const pid = d.current!.child.pid!;
    const mb = (bytes: number | undefined) => Number(((bytes ?? 0) / 1048576).toFixed(0));
    const idle = mb(d.rssBytes());
    const client = new AckingClient();
    const driver = new SpanDriver(d, client, TARGETS, BATCH);
    const runs = [];
    for (const rate of rates) {
      let stop = false;
      let rssMax = 0;
      const sampler = (async () => {
        while (!stop) {
          rssMax = Math.max(rssMax, mb(d.rssBytes()));
          await sleep(1000);
        }
      })();
      const acked0 = client.acked.size;
      const cpu0 = cpuSeconds(pid);
      const t0 = performance.now();
      await driver.drive(seconds * 1000, WORKERS, rate / BATCH / WORKERS);
      const wallS = (performance.now() - t0) / 1000;
      const cpu = ((cpuSeconds(pid) - cpu0) / wallS) * 100;
      stop = true;
      await sampler;
      runs.push({
        offered_spans_per_s: rate,
        acked_spans_per_s: Math.round((client.acked.size - acked0) / wallS),
        cpu_percent_of_one_core: Number(cpu.toFixed(1)),
        rss_max_mb: rssMax,
        heap_used_mb: mb(await d.metric('nodejs_heap_size_used_bytes')),
        heap_total_mb: mb(await d.metric('nodejs_heap_size_total_bytes')),
        external_mb: mb(await d.metric('nodejs_external_memory_bytes')),
      });
      // Drain before the next rate, so each starts from an empty spool.
      const drainUntil = Date.now() + 60_000;
      while (((await d.metric('cachelens_spool_spans')) ?? 0) > 0 && Date.now() < drainUntil) await sleep(500);
    }
    return { seconds_per_rate: seconds, rss_idle_mb: idle, runs, downstream_bytes: received };
  } finally {
    await d.stop();
    sink.forceShutdown();
    fleet.close();
  }
}
