-- Scrape store: targets, every scrape attempt, normalized series, exact counter deltas, gauge samples,
-- per-minute rollups, and the last raw value of each exposed counter (so deltas survive a restart).

CREATE TABLE targets (
  id            INTEGER PRIMARY KEY,
  url           TEXT NOT NULL UNIQUE,
  instance      TEXT NOT NULL,
  labels_json   TEXT NOT NULL DEFAULT '{}',
  profile       TEXT,
  first_seen_ms INTEGER NOT NULL,
  last_seen_ms  INTEGER NOT NULL
);

-- One row per scrape attempt, failed ones included: up, duration, sample count, last error.
CREATE TABLE scrapes (
  id            INTEGER PRIMARY KEY,
  target_id     INTEGER NOT NULL REFERENCES targets(id),
  ts_ms         INTEGER NOT NULL,
  duration_ms   REAL NOT NULL,
  up            INTEGER NOT NULL,
  samples       INTEGER NOT NULL,
  parse_errors  INTEGER NOT NULL DEFAULT 0,
  profile       TEXT,
  error         TEXT
);
CREATE INDEX scrapes_target_ts ON scrapes(target_id, ts_ms);
CREATE INDEX scrapes_ts ON scrapes(ts_ms);

-- engine '' is the combination over all engines (data-parallel ranks) of a model on a target.
CREATE TABLE series (
  id        INTEGER PRIMARY KEY,
  target_id INTEGER NOT NULL REFERENCES targets(id),
  model     TEXT NOT NULL,
  engine    TEXT NOT NULL,
  signal    TEXT NOT NULL,
  kind      TEXT NOT NULL CHECK (kind IN ('counter', 'gauge')),
  unit      TEXT NOT NULL,
  UNIQUE (target_id, model, engine, signal)
);

-- Delta between consecutive successful scrapes; interval_ms > scrape interval marks missed scrapes.
CREATE TABLE counter_deltas (
  series_id   INTEGER NOT NULL,
  ts_ms       INTEGER NOT NULL,
  interval_ms INTEGER NOT NULL,
  delta       REAL NOT NULL,
  value       REAL NOT NULL,
  resets      INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (series_id, ts_ms)
) WITHOUT ROWID;

CREATE TABLE gauge_samples (
  series_id INTEGER NOT NULL,
  ts_ms     INTEGER NOT NULL,
  value     REAL NOT NULL,
  PRIMARY KEY (series_id, ts_ms)
) WITHOUT ROWID;

-- Per-minute aggregates, kept far longer than raw rows. A delta lands in the minute its scrape ended.
CREATE TABLE rollup_minute (
  series_id   INTEGER NOT NULL,
  minute_ms   INTEGER NOT NULL,
  delta_sum   REAL,
  resets      INTEGER,
  gauge_min   REAL,
  gauge_max   REAL,
  gauge_sum   REAL,
  gauge_count INTEGER,
  gauge_last  REAL,
  PRIMARY KEY (series_id, minute_ms)
) WITHOUT ROWID;

CREATE TABLE counter_state (
  target_id       INTEGER NOT NULL,
  series_key      TEXT NOT NULL,
  value           REAL NOT NULL,
  created_seconds REAL,
  ts_ms           INTEGER NOT NULL,
  PRIMARY KEY (target_id, series_key)
) WITHOUT ROWID;
