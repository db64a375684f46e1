-- The request ledger keyed by time: a request span's row lands at the B-tree's growing edge, so a
-- batch dirties a few pages, not one random page per row as the (trace_id, span_id) key did (13–15 µs
-- a row, against ~4 µs; bench/README.md). A re-exported span has the same start, so a replay still
-- replaces its row. Nothing looks rows up by trace any more: late trace-level facts mark hours by
-- the carrying span's time, and the reports split a trace's count over its rows within an hour's
-- reach (src/store/rollups.ts).
DROP VIEW request_ledger_tenants;
CREATE TABLE request_ledger_v4 (
  start_ms REAL NOT NULL,
  trace_id TEXT NOT NULL,
  span_id TEXT NOT NULL,
  end_ms REAL NOT NULL,
  span_name TEXT NOT NULL,
  service_name TEXT,
  -- no REFERENCES targets (id): the enricher takes ids from that table, and the check cost 0.7 µs a row
  target_id INTEGER,
  instance TEXT,
  model TEXT,
  match TEXT NOT NULL, -- config|resource|peer|fleet
  prompt_tokens INTEGER,
  completion_tokens INTEGER,
  -- a real per-request count from the span, when it carries one
  cached_tokens INTEGER,
  -- this request's share of the window's cached prompt tokens, when no real count exists
  cached_tokens_estimate REAL,
  window_complete INTEGER NOT NULL,
  latency_ttft_s REAL,
  latency_e2e_s REAL,
  latency_queue_s REAL,
  latency_prefill_s REAL,
  latency_decode_s REAL,
  latency_inference_s REAL,
  -- configured tenant keys found on the span or its resource, as a JSON object
  tenant_json TEXT,
  PRIMARY KEY (start_ms, trace_id, span_id)
) WITHOUT ROWID;
INSERT OR REPLACE INTO request_ledger_v4 (start_ms, trace_id, span_id, end_ms, span_name, service_name, target_id, instance, model, match,
  prompt_tokens, completion_tokens, cached_tokens, cached_tokens_estimate, window_complete,
  latency_ttft_s, latency_e2e_s, latency_queue_s, latency_prefill_s, latency_decode_s, latency_inference_s, tenant_json)
SELECT start_ms, trace_id, span_id, end_ms, span_name, service_name, target_id, instance, model, match,
  prompt_tokens, completion_tokens, cached_tokens, cached_tokens_estimate, window_complete,
  latency_ttft_s, latency_e2e_s, latency_queue_s, latency_prefill_s, latency_decode_s, latency_inference_s, tenant_json
FROM request_ledger;
DROP TABLE request_ledger;
ALTER TABLE request_ledger_v4 RENAME TO request_ledger;

CREATE VIEW request_ledger_tenants AS
SELECT l.trace_id, l.span_id, t.key, coalesce(json_extract(l.tenant_json, '$."' || t.key || '"'), t.value) AS value
FROM request_ledger l JOIN trace_tenants t ON t.trace_id = l.trace_id;
