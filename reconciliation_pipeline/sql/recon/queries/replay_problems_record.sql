INSERT INTO recon.ledger_problems (replay_id, ledger_sequence, kind, ledgers, detail)
SELECT :replay_id, p.ledger_sequence, p.kind, p.ledgers, p.detail
FROM unnest(CAST(:ledgers AS bigint[]), CAST(:kinds AS text[]), CAST(:counts AS integer[]),
            CAST(:details AS text[])) AS p(ledger_sequence, kind, ledgers, detail)
