// A simulated fleet for the scrape benchmark: N vLLM targets on 127.0.0.1, one path each, run in its own
// process so its CPU is not counted against cachelens. Counters grow with time; histograms are static.
import http from 'node:http';
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
  res.end(head.slice(0, head.indexOf('# HELP vllm:cache_config_info')) + tail);
});
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1', () => {
  const addr = server.address() as { port: number };
  process.stdout.write(`${JSON.stringify({ port: addr.port, bodyBytes: full.length })}\n`);
});
