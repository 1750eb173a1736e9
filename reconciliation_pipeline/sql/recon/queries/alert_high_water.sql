-- The newest incident activity: the sensor's next cursor once every candidate is handled.
SELECT max(last_seen_at) FROM recon.drift_incidents
