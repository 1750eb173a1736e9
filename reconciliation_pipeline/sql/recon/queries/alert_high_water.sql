-- The newest incident activity up to :now (sightings, confirmations, resolutions,
-- acknowledgements running out): the sensor's next cursor once every candidate is handled.
SELECT greatest(max(last_seen_at), max(confirmed_at), max(resolved_at),
                max(acknowledged_until) FILTER (WHERE acknowledged_until <= CAST(:now AS timestamptz)))
FROM recon.drift_incidents
