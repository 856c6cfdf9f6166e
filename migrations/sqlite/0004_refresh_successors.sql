-- Idempotent rotation: a rotated token names the one successor its rotation chose (its hash),
-- so a replay inside the grace window is answered with that same successor and a family can
-- never fork into two live branches.
ALTER TABLE refresh_tokens ADD COLUMN successor_hash TEXT;
