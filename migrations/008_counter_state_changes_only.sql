-- Counter state is rewritten only when a series' value or _created changes (issues 17 and 20: about a third
-- of a scrape's statements rewrote unchanged rows). A row's ts_ms is then its last write, not its last
-- sighting. `absent` says which: 0, the series was in its target's last successful scrape, so it was seen
-- then (the time comes from `scrapes`); 1, it was missing from it and ts_ms is when it was last seen.
ALTER TABLE counter_state ADD COLUMN absent INTEGER NOT NULL DEFAULT 0;
