// `npm run bench [-- parse|fleet|pipeline|memory|ledger|report|merge|source|bytes]`: prints one JSON object per
// benchmark; figures go in bench/README.md.
import { runFleetBench } from './fleetBench.ts';
import { runLedgerBench } from './ledgerBench.ts';
import { runMemoryBench } from './memoryBench.ts';
import { runMergeBench } from './mergeBench.ts';
import { runParseBench } from './parseBench.ts';
import { runPipelineBench } from './pipelineBench.ts';
import { runReportBench } from './reportBench.ts';
import { runSourceBench } from './sourceBench.ts';
import { measureAddedBytes } from './spanBytes.ts';

const which = process.argv[2] ?? 'all';
const out: Record<string, unknown> = { node: process.version, date: new Date().toISOString() };
if (which === 'all' || which === 'parse') out.parse = runParseBench();
if (which === 'all' || which === 'fleet')
  out.fleet = await runFleetBench(
    Number(process.env.BENCH_TARGETS ?? 1000),
    Number(process.env.BENCH_WARMUP_S ?? 20),
    Number(process.env.BENCH_MEASURE_S ?? 60),
  );
if (which === 'all' || which === 'pipeline')
  out.pipeline = await runPipelineBench(Number(process.env.BENCH_REQUESTS ?? 400));
if (which === 'all' || which === 'memory')
  out.memory = await runMemoryBench(
    (process.env.BENCH_MEMORY_RATES ?? '5000,10000').split(',').map(Number),
    Number(process.env.BENCH_MEMORY_S ?? 30),
  );
if (which === 'all' || which === 'ledger') out.ledger = runLedgerBench(Number(process.env.BENCH_LEDGER_BATCHES ?? 400));
if (which === 'all' || which === 'report') {
  const env = (k: string, d: number) => Number(process.env[k] ?? d);
  out.report = await runReportBench({
    days: env('BENCH_REPORT_DAYS', 30),
    instances: env('BENCH_REPORT_INSTANCES', 100),
    modelsPerInstance: 2,
    scrapeIntervalS: 5,
    requestsPerS: env('BENCH_REPORT_RPS', 10),
    tenants: env('BENCH_REPORT_TENANTS', 50),
  });
}
if (which === 'all' || which === 'merge')
  out.merge = await runMergeBench(
    Number(process.env.BENCH_MERGE_STORES ?? 10),
    Number(process.env.BENCH_MERGE_DAYS ?? 3),
    Number(process.env.BENCH_MERGE_INSTANCES ?? 10),
  );
if (which === 'all' || which === 'bytes') out.bytes = measureAddedBytes();
if (which === 'all' || which === 'source')
  out.source = await runSourceBench(
    Number(process.env.BENCH_SOURCE_SERVERS ?? 2000),
    Number(process.env.BENCH_WARMUP_S ?? 45),
    Number(process.env.BENCH_MEASURE_S ?? 90),
  );
console.log(JSON.stringify(out, null, 2));
process.exit(0);
