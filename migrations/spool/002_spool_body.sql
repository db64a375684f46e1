-- The body in its own table. A postpone (UPDATE of not_before_ms) rewrote the whole row, the body's
-- overflow pages included: about 3 ms for a 356 KB request, more than enriching its 512 spans.
CREATE TABLE spool_body (
  id INTEGER PRIMARY KEY,
  -- ExportTraceServiceRequest protobuf, uncompressed (JSON bodies are re-encoded)
  body BLOB NOT NULL
);
INSERT INTO spool_body (id, body) SELECT id, body FROM spool;

CREATE TABLE spool_v2 (
  id INTEGER PRIMARY KEY,
  received_ms INTEGER NOT NULL,
  -- earliest time the exporter looks at this row again (closing scrape, retry backoff)
  not_before_ms INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  spans INTEGER NOT NULL,
  bytes INTEGER NOT NULL,
  -- the OTLP connection's peer address, for span matching rule 3
  peer TEXT
);
INSERT INTO spool_v2 (id, received_ms, not_before_ms, attempts, spans, bytes, peer)
SELECT id, received_ms, not_before_ms, attempts, spans, bytes, peer FROM spool;
DROP TABLE spool;
ALTER TABLE spool_v2 RENAME TO spool;
CREATE INDEX spool_ready ON spool (not_before_ms, id);
