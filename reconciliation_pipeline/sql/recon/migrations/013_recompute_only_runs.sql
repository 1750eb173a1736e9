-- A run that compared nothing by design (a streaks backfill of a past day recomputes that day
-- from the session log; today's projection and chain cannot be compared with it) is recorded as
-- such: status and outcome 'recomputed', and the run's own account of it in status_note.
ALTER TABLE recon.runs DROP CONSTRAINT runs_status_check;
ALTER TABLE recon.runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('running', 'succeeded', 'partial', 'recomputed', 'failed'));
ALTER TABLE recon.runs DROP CONSTRAINT runs_outcome_check;
ALTER TABLE recon.runs ADD CONSTRAINT runs_outcome_check CHECK (outcome IN ('succeeded', 'partial', 'recomputed'));
ALTER TABLE recon.runs ADD COLUMN status_note TEXT;

COMMENT ON COLUMN recon.runs.status IS 'running (from the first step until the last ends), succeeded, partial (some entities could not be checked), recomputed (compared nothing by design: a past day''s streaks recomputed only, see status_note) or failed (see error).';
COMMENT ON COLUMN recon.runs.outcome IS 'What the findings step concluded (succeeded / partial / recomputed); the status once every later step ended.';
COMMENT ON COLUMN recon.runs.status_note IS 'Why a run compared nothing (status recomputed), in the run''s words; NULL otherwise.';
