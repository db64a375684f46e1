-- Tiered KV caches (issue 22): where cached prompt tokens came from, and the KV connector's lookups,
-- summed like the other counters of a fact. NULL where the server did not expose them (before vLLM
-- 0.16, no KV connector, and every hour compacted before this migration).
ALTER TABLE fleet_rollup ADD COLUMN prompt_tokens_local_cache_hit REAL;
ALTER TABLE fleet_rollup ADD COLUMN prompt_tokens_external_transfer REAL;
ALTER TABLE fleet_rollup ADD COLUMN prompt_tokens_local_compute REAL;
ALTER TABLE fleet_rollup ADD COLUMN external_prefix_cache_queries REAL;
ALTER TABLE fleet_rollup ADD COLUMN external_prefix_cache_hits REAL;
