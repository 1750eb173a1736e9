SELECT * FROM recon.drift_incidents WHERE incident_id = :incident_id
