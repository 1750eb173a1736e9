-- Insert a loan that exists on chain but has no row, from the chain's state
-- (the target value, a JSON object). Compare-and-swap for an insert: it only
-- happens while no row holds that key (ON CONFLICT DO NOTHING covers the id and
-- chain_loan_id) and no provisional row is waiting for the same loan_created
-- transaction. Zero rows inserted means the app wrote it first: skipped.
-- The observed value is NULL by construction (the run observed no row).
INSERT INTO loans (id, chain_loan_id, is_provisional, borrower_address, principal, outstanding, status,
                   submitted_tx_hash, created_at, updated_at)
SELECT CAST(:entity_key AS text),
       CAST(:entity_key AS numeric),
       false,
       target.loan ->> 'borrower',
       CAST(target.loan ->> 'principal' AS numeric),
       CAST(target.loan ->> 'outstanding' AS numeric),
       target.loan ->> 'status',
       target.loan ->> 'created_tx_hash',
       COALESCE(CAST(target.loan ->> 'created_at' AS timestamptz), now()),
       now()
FROM (SELECT CAST(:target_value AS jsonb) AS loan) AS target
WHERE CAST(:observed_value AS text) IS NULL
  AND NOT EXISTS (
        SELECT 1 FROM loans AS provisional
        WHERE provisional.chain_loan_id IS NULL
          AND provisional.submitted_tx_hash = target.loan ->> 'created_tx_hash')
ON CONFLICT DO NOTHING
