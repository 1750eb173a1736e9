UPDATE recon.runs
SET finished_at = :finished_at,
    status = :status,
    entities_checked = :entities_checked,
    entities_unchecked = :entities_unchecked,
    finding_counts = CAST(:finding_counts AS jsonb),
    in_flight = :in_flight
WHERE run_id = :run_id AND domain = :domain
