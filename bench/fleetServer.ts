// A simulated fleet for the scrape benchmark: N vLLM targets on 127.0.0.1, one path each, run in its own
// process so its CPU is not counted against cachelens. Counters grow with time; histograms are static.
import http from 'node:http';
import { gzipSync } from 'node:zlib';
import { demoModelState, renderVllmExposition } from '../src/demo/vllmExposition.ts';

const targets = Number(process.argv[2] ?? 1000);
const port = Number(process.argv[3] ?? 0);
// Every histogram vLLM ≥ 0.11 serves, KV-block lifetimes included: 57.5 KB, as a real server's body.
const full = renderVllmExposition([demoModelState('meta-llama/Llama-3.1-8B-Instruct')], {
  created: true,
  kvBlockHistograms: true,
});
// Split the body: the counters/gauges head changes per request, the histogram tail is served as is.
const cut = full.indexOf('# HELP vllm:request_prompt_tokens');
const tail = full.slice(cut);
// Answers `Accept-Encoding: gzip` with gzip, as vLLM's prometheus_client does (BENCH_GZIP=0: never). The static
// tail is compressed once; each answer is two gzip members (head, tail), which Go's and Node's readers join.
const gzip = process.env.BENCH_GZIP !== '0';
const tailGz = gzipSync(tail);
const t0 = Date.now();
const server = http.createServer((req, res) => {
  const id = Number((req.url ?? '').split('/')[2] ?? 0);
  if (!(id >= 0 && id < targets)) {
    res.statusCode = 404;
    return res.end();
  }
  const scale = 1 + (Date.now() - t0) / 1000 + id;
  const head = renderVllmExposition(
    [
      {
        ...demoModelState('meta-llama/Llama-3.1-8B-Instruct'),
        prefixCacheQueries: Math.round(1000 * scale),
        prefixCacheHits: Math.round(600 * scale),
        promptTokens: Math.round(1000 * scale),
        promptTokensCached: Math.round(600 * scale),
        generationTokens: Math.round(300 * scale),
      },
    ],
    { created: true, histograms: false },
  );
  res.setHeader('Content-Type', 'text/plain; version=0.0.4; charset=utf-8');
  const top = head.slice(0, head.indexOf('# HELP vllm:cache_config_info'));
  if (gzip && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) {
    res.setHeader('Content-Encoding', 'gzip');
    res.end(Buffer.concat([gzipSync(top), tailGz]));
  } else res.end(top + tail);
});
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1', () => {
  const addr = server.address() as { port: number };
  process.stdout.write(
    `${JSON.stringify({ port: addr.port, bodyBytes: full.length, gzipBytes: gzip ? gzipSync(full).length : 0 })}\n`,
  );
});
