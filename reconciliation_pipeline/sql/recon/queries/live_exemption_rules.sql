-- Whether the domain has an exemption rule in force now.
SELECT EXISTS (
    SELECT 1 FROM recon.exemption_rules
    WHERE domain = :domain AND revoked_at IS NULL AND expires_at > CAST(:seen_at AS timestamptz)
)
