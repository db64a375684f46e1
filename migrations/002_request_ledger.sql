-- One row per request span that passed through the pipeline; the FinOps reports read it.
CREATE TABLE request_ledger (
  trace_id TEXT NOT NULL,
  span_id TEXT NOT NULL,
  start_ms REAL NOT NULL,
  end_ms REAL NOT NULL,
  span_name TEXT NOT NULL,
  service_name TEXT,
  target_id INTEGER REFERENCES targets (id),
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
  PRIMARY KEY (trace_id, span_id)
);
CREATE INDEX request_ledger_start ON request_ledger (start_ms);

-- Tenant keys seen on any span of a trace (a gateway span with tenant.id), so a request span
-- exported before or after it still resolves its tenant.
CREATE TABLE trace_tenants (
  trace_id TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  seen_ms INTEGER NOT NULL,
  PRIMARY KEY (trace_id, key)
);
CREATE INDEX trace_tenants_seen ON trace_tenants (seen_ms);

-- The tenant of each ledger row: the span's or resource's own value, else one seen on its trace.
CREATE VIEW request_ledger_tenants AS
SELECT l.trace_id, l.span_id, t.key, coalesce(json_extract(l.tenant_json, '$."' || t.key || '"'), t.value) AS value
FROM request_ledger l JOIN trace_tenants t ON t.trace_id = l.trace_id;
