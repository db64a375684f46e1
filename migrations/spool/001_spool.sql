-- The durable export queue: one row per accepted OTLP request, deleted only once downstream
-- acknowledged it (or rejected it permanently). Kept in its own file so its size bound and
-- fsync policy are independent of the scrape store.
CREATE TABLE spool (
  id INTEGER PRIMARY KEY,
  received_ms INTEGER NOT NULL,
  -- earliest time the exporter looks at this row again (closing scrape, retry backoff)
  not_before_ms INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  spans INTEGER NOT NULL,
  bytes INTEGER NOT NULL,
  -- the OTLP connection's peer address, for span matching rule 3
  peer TEXT,
  -- ExportTraceServiceRequest protobuf, uncompressed (JSON bodies are re-encoded)
  body BLOB NOT NULL
);
CREATE INDEX spool_ready ON spool (not_before_ms, id);
