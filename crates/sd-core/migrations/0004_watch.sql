-- Schema 4: live watching. A location is watched by the daemon unless the user turned it off.
ALTER TABLE locations ADD COLUMN watch INTEGER NOT NULL DEFAULT 1;
