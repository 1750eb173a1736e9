-- The lending pool's contract events, indexed per UTC day (one partition per
-- day). Re-indexing a day replaces that day's rows in one transaction. Amounts
-- are exact (NUMERIC(39,0) holds the whole i128 range).

CREATE TABLE recon.lending_events (
    event_id         TEXT PRIMARY KEY,                -- the RPC's event id (TOID-event index)
    partition_key    TEXT NOT NULL,                   -- UTC day of the ledger's close, YYYY-MM-DD
    contract_id      TEXT NOT NULL,
    ledger           BIGINT NOT NULL,
    ledger_closed_at TIMESTAMPTZ NOT NULL,
    tx_hash          TEXT NOT NULL,
    event_type       TEXT NOT NULL,                   -- loan_created | loan_repaid | loan_closed | deposit | withdraw
    loan_id          NUMERIC(20,0),                   -- loan events
    address          TEXT,                            -- borrower (loan_created) or provider (deposit, withdraw)
    amount           NUMERIC(39,0),                   -- principal, repaid, deposited or withdrawn amount
    loan_status      TEXT,                            -- loan_closed: the final status, lower case
    topic_xdr        JSONB NOT NULL,                  -- the raw topic segments (base64 ScVal)
    value_xdr        TEXT NOT NULL,                   -- the raw value (base64 ScVal)
    decode_error     TEXT,                            -- set when the event does not follow CONTRACTS.md §2
    indexed_run_id   TEXT NOT NULL,
    indexed_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX lending_events_partition_idx ON recon.lending_events (partition_key);
CREATE INDEX lending_events_tx_hash_idx ON recon.lending_events (tx_hash);
CREATE INDEX lending_events_loan_idx ON recon.lending_events (loan_id) WHERE loan_id IS NOT NULL;
CREATE INDEX lending_events_type_closed_idx ON recon.lending_events (event_type, ledger_closed_at);
COMMENT ON TABLE recon.lending_events IS 'The lending contract''s events by UTC day; re-indexing a day replaces its rows.';

CREATE OR REPLACE VIEW recon.lending_daily_events AS
SELECT partition_key AS day,
       event_type,
       count(*)                               AS events,
       count(*) FILTER (WHERE decode_error IS NOT NULL) AS undecodable,
       sum(amount)                            AS amount
FROM recon.lending_events
GROUP BY partition_key, event_type;
COMMENT ON VIEW recon.lending_daily_events IS 'Indexed lending events per UTC day and type, with their summed amounts.';
