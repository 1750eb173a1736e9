-- Reference schema of the reconciled applications (all five domains).
-- It stands in for the apps' own tables in the demo and the tests; against a
-- real database, point the snapshot queries in sql/snapshots/ at your tables.
-- Amounts are integers in base units (stroops, i128): NUMERIC(39,0) holds the
-- whole i128 range exactly. There are deliberately no CHECK constraints on
-- amounts: the pipeline's invariants exist because apps do not enforce them.

CREATE TABLE IF NOT EXISTS users (
    id             BIGINT PRIMARY KEY,
    username       TEXT NOT NULL,
    wallet_address TEXT,                         -- G... account or C... contract; NULL = no wallet
    timezone       TEXT NOT NULL DEFAULT 'UTC',  -- IANA name, used by the streak engine
    usdc_balance   NUMERIC(39,0) NOT NULL DEFAULT 0,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Streams (escrow): id is the on-chain Stream(u64) id.
CREATE TABLE IF NOT EXISTS streams (
    id                NUMERIC(20,0) PRIMARY KEY,
    sender_address    TEXT NOT NULL,
    recipient_address TEXT NOT NULL,
    token_address     TEXT NOT NULL,
    total_amount      NUMERIC(39,0) NOT NULL,
    released_amount   NUMERIC(39,0) NOT NULL,
    status            TEXT NOT NULL,             -- active | paused | completed | cancelled
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS streams_created_at_idx ON streams (created_at);
CREATE INDEX IF NOT EXISTS streams_updated_at_idx ON streams (updated_at);

-- Lending: a loan is written optimistically under a provisional id until the
-- chain's Loan(u64) id is known.
CREATE TABLE IF NOT EXISTS loans (
    id                TEXT PRIMARY KEY,
    chain_loan_id     NUMERIC(20,0) UNIQUE,      -- NULL while provisional
    is_provisional    BOOLEAN NOT NULL DEFAULT false,
    borrower_address  TEXT NOT NULL,
    principal         NUMERIC(39,0) NOT NULL,
    outstanding       NUMERIC(39,0) NOT NULL,
    status            TEXT NOT NULL,             -- active | repaid | defaulted | liquidated
    submitted_tx_hash TEXT,                      -- hash of the transaction the app submitted
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS transactions (
    id           BIGSERIAL PRIMARY KEY,
    tx_hash      TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL,                  -- borrow | repay | deposit | withdraw
    loan_id      TEXT,
    address      TEXT,
    amount       NUMERIC(39,0),
    status       TEXT NOT NULL,                  -- pending | succeeded | failed | expired
    submitted_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS transactions_status_idx ON transactions (status);

CREATE TABLE IF NOT EXISTS liquidity_positions (
    provider_address TEXT PRIMARY KEY,
    deposited        NUMERIC(39,0) NOT NULL,
    shares           NUMERIC(39,0) NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS reputation (
    address    TEXT PRIMARY KEY,
    score      BIGINT NOT NULL,                  -- u32 on chain
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Markets: id is the AMM's Pool(u64) market id; each market has its own contract.
CREATE TABLE IF NOT EXISTS markets (
    id               NUMERIC(20,0) PRIMARY KEY,
    title            TEXT NOT NULL,
    contract_address TEXT NOT NULL,
    status           TEXT NOT NULL,              -- open | closed | resolved
    winning_outcome  SMALLINT,                   -- 0 = YES, 1 = NO, NULL until resolved
    yes_liquidity    NUMERIC(39,0) NOT NULL,
    no_liquidity     NUMERIC(39,0) NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Streaks: an immutable session log and a denormalized projection of it.
CREATE TABLE IF NOT EXISTS focus_sessions (
    id          TEXT PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id),
    started_at  TIMESTAMPTZ NOT NULL,
    ended_at    TIMESTAMPTZ NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (ended_at >= started_at)
);
CREATE INDEX IF NOT EXISTS focus_sessions_user_idx ON focus_sessions (user_id, started_at);
CREATE INDEX IF NOT EXISTS focus_sessions_received_idx ON focus_sessions (received_at);

CREATE TABLE IF NOT EXISTS user_streaks (
    user_id             BIGINT PRIMARY KEY REFERENCES users (id),
    current_streak      INTEGER NOT NULL DEFAULT 0,
    longest_streak      INTEGER NOT NULL DEFAULT 0,
    last_qualified_date DATE,
    qualified_days      INTEGER NOT NULL DEFAULT 0,
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS user_streaks_updated_idx ON user_streaks (updated_at);
