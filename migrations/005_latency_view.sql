-- The latency view (issue 18): what the fleet looked like when each request started, and latency
-- percentiles by cache-hit, KV-usage and queue bucket kept in hourly and daily rollups.

-- The matched instance's KV-cache usage (0–1) and requests waiting at the start of the request's
-- window; NULL when unknown (no scrape before the span, or matched fleet-wide). Older rows stay NULL.
ALTER TABLE request_ledger ADD COLUMN kv_usage_start REAL;
ALTER TABLE request_ledger ADD COLUMN waiting_start REAL;

-- One row per (bucket, target, model, tenant, family, bucket of that family). Every request is in one
-- row of each family: cache_hit (its cached share of the prompt), kv_usage and waiting (at the start of
-- its window); 'unknown' where the input is missing. Percentiles come from the DDSketches (1 % relative
-- accuracy, src/store/sketch.ts). hour / day: per instance, tenants folded (tenant '*'); hour_all /
-- day_all: per tenant, instances folded (target 0); hour_model / day_model: both folded, what a view by
-- model or time reads (a month of day_all rows is hundreds of MB of sketches). Per instance and tenant at
-- once would be more rows than the ledger holds requests; a view by both reads the ledger.
CREATE TABLE latency_rollup (
  level            TEXT NOT NULL CHECK (level IN ('hour', 'day', 'hour_all', 'day_all', 'hour_model', 'day_model')),
  bucket_ms        INTEGER NOT NULL,
  target_id        INTEGER NOT NULL,
  model            TEXT NOT NULL,
  tenant           TEXT NOT NULL,
  family           TEXT NOT NULL CHECK (family IN ('cache_hit', 'kv_usage', 'waiting')),
  bucket           TEXT NOT NULL,
  requests         INTEGER NOT NULL,
  prompt_requests  INTEGER NOT NULL, -- requests with a prompt token count
  prompt_tokens    REAL NOT NULL,
  share_measured   INTEGER NOT NULL, -- requests whose cached share was measured
  share_estimated  INTEGER NOT NULL, -- … or estimated from their window
  ttft_sketch      TEXT,
  queue_sketch     TEXT,
  prefill_sketch   TEXT,
  e2e_sketch       TEXT,
  prefill_per_1k_sketch TEXT, -- prefill seconds per 1,000 uncached prompt tokens
  PRIMARY KEY (level, bucket_ms, target_id, model, tenant, family, bucket)
) WITHOUT ROWID;

-- Hours compacted before this migration: the compactor builds their latency rows once, from the
-- ledger rows still kept, and the latency view reads them raw until then.
CREATE TABLE latency_backfill (
  bucket_ms INTEGER PRIMARY KEY
);
INSERT INTO latency_backfill (bucket_ms)
  SELECT DISTINCT CAST(start_ms / 3600000 AS INTEGER) * 3600000 FROM request_ledger
  WHERE start_ms < (SELECT done_until_ms FROM compaction WHERE level = 'hour');
