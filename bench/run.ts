// `npm run bench [-- parse|fleet|pipeline]`: prints one JSON object per benchmark; figures go in bench/README.md.
import { runFleetBench } from './fleetBench.ts';
import { runParseBench } from './parseBench.ts';
import { runPipelineBench } from './pipelineBench.ts';

const which = process.argv[2] ?? 'all';
const out: Record<string, unknown> = { node: process.version, date: new Date().toISOString() };
if (which === 'all' || which === 'parse') out.parse = runParseBench();
if (which === 'all' || which === 'fleet') out.fleet = await runFleetBench(Number(process.env.BENCH_TARGETS ?? 1000), Number(process.env.BENCH_WARMUP_S ?? 20), Number(process.env.BENCH_MEASURE_S ?? 60));
if (which === 'all' || which === 'pipeline') out.pipeline = await runPipelineBench(Number(process.env.BENCH_REQUESTS ?? 400));
console.log(JSON.stringify(out, null, 2));
process.exit(0);
