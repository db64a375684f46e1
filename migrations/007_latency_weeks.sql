-- Weekly latency rollups (issue 18): a 30-day latency view by tenant read 73,440 daily rows of five
-- sketches each, 1.4 s through the CLI; as 4 weeks and 2 days it reads a fifth of that. Weeks start on
-- Monday 00:00 UTC. The same columns and levels as latency_rollup's days: week (per instance, tenants
-- folded), week_all (per tenant, instances folded), week_model (both folded). Only a view that does not
-- group by day or hour reads them; the cost report has no need (its daily rows are few).
CREATE TABLE latency_week (
  level            TEXT NOT NULL CHECK (level IN ('week', 'week_all', 'week_model')),
  bucket_ms        INTEGER NOT NULL,
  target_id        INTEGER NOT NULL,
  model            TEXT NOT NULL,
  tenant           TEXT NOT NULL,
  family           TEXT NOT NULL CHECK (family IN ('cache_hit', 'kv_usage', 'waiting')),
  bucket           TEXT NOT NULL,
  requests         INTEGER NOT NULL,
  prompt_requests  INTEGER NOT NULL,
  prompt_tokens    REAL NOT NULL,
  share_measured   INTEGER NOT NULL,
  share_estimated  INTEGER NOT NULL,
  ttft_sketch      TEXT,
  queue_sketch     TEXT,
  prefill_sketch   TEXT,
  e2e_sketch       TEXT,
  prefill_per_1k_sketch TEXT,
  PRIMARY KEY (level, bucket_ms, target_id, model, tenant, family, bucket)
) WITHOUT ROWID;

-- Weeks whose rows are built from their seven days. A redone day (late spans, a latency backfill) takes
-- its week out of this list until the compactor builds the week again; a report reads days meanwhile.
CREATE TABLE latency_week_done (
  bucket_ms INTEGER PRIMARY KEY
);
