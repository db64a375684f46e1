-- Hourly and daily aggregates (level 'hour' | 'day') for the FinOps reports, so a 30-day report reads thousands of rows,
-- not millions. The compactor (src/store/compaction.ts) builds them from rollup_minute and
-- request_ledger once an hour is closed; reports read the still-open tail from those tables directly.

-- One row per (bucket, target, model), signals pivoted into columns. Counter columns are sums of exact
-- deltas (NULL when the server does not expose the signal). Gauges keep sum and count of their
-- 1-minute means, plus a mergeable DDSketch (src/store/sketch.ts) of those means for percentiles.
CREATE TABLE fleet_rollup (
  level                TEXT NOT NULL CHECK (level IN ('hour', 'day')),
  bucket_ms            INTEGER NOT NULL, -- start of the hour or UTC day
  target_id            INTEGER NOT NULL,
  model                TEXT NOT NULL,
  minutes              INTEGER NOT NULL, -- minutes that had any sample: what a GPU-hour price bills
  requests             REAL,
  prompt_tokens        REAL,
  prompt_tokens_cached REAL,
  prefix_cache_hits    REAL,
  prefix_cache_queries REAL,
  generation_tokens    REAL,
  preemptions          REAL,
  resets               INTEGER NOT NULL DEFAULT 0,
  kv_sum               REAL,
  kv_count             INTEGER,
  kv_sketch            TEXT,
  queue_sum            REAL,
  queue_count          INTEGER,
  queue_sketch         TEXT,
  PRIMARY KEY (level, bucket_ms, target_id, model)
) WITHOUT ROWID;

-- Request ledger by (bucket, target, model, tenant). target_id 0: matched fleet-wide; model and
-- tenant '': unknown. Cached tokens are split by where they came from: a real count on a span of
-- the trace (measured) or the request's share of its window (allocated).
CREATE TABLE ledger_rollup (
  -- hour_all / day_all: the same with instances folded together (target_id 0), what a report reads
  -- when it neither groups by instance nor prices per GPU-hour: one row per model and tenant.
  level              TEXT NOT NULL CHECK (level IN ('hour', 'day', 'hour_all', 'day_all')),
  bucket_ms          INTEGER NOT NULL,
  target_id          INTEGER NOT NULL,
  model              TEXT NOT NULL,
  tenant             TEXT NOT NULL,
  requests           INTEGER NOT NULL,
  prompt_tokens      REAL NOT NULL,
  completion_tokens  REAL NOT NULL,
  cached_measured    REAL NOT NULL,
  requests_measured  INTEGER NOT NULL,
  cached_allocated   REAL NOT NULL,
  requests_allocated INTEGER NOT NULL,
  PRIMARY KEY (level, bucket_ms, target_id, model, tenant)
) WITHOUT ROWID;

-- A real per-request cached-token count seen on a span of a trace that is not its request span
-- (a gateway or client span), whenever it arrives.
CREATE TABLE trace_usage (
  trace_id      TEXT PRIMARY KEY,
  cached_tokens REAL NOT NULL,
  seen_ms       INTEGER NOT NULL
);
CREATE INDEX trace_usage_seen ON trace_usage (seen_ms);

-- How far compaction got: every hour (day) before done_until_ms is aggregated.
CREATE TABLE compaction (
  level         TEXT PRIMARY KEY CHECK (level IN ('hour', 'day')),
  done_until_ms INTEGER NOT NULL
);

-- Hours before the watermark that received ledger rows after they were compacted (a spool that
-- drained late); reports read them raw until the compactor has redone them.
CREATE TABLE compaction_dirty (
  bucket_ms INTEGER PRIMARY KEY
);
