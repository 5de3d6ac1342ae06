-- Schema 7: a follow-up rescan. Set when a location's rules change while an index job runs
-- (that job read the old rules); when the job ends, a full rescan under the new rules starts
-- and the flag is cleared. Any new full index job clears it (it reads the current rules).
ALTER TABLE locations ADD COLUMN rescan_after INTEGER NOT NULL DEFAULT 0;
