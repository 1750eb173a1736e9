-- The least-privileged role the reconciliation runs as: `recon_pipeline`.
--
-- Run once per application database, as its owner (or a superuser):
--     psql "$OWNER_DATABASE_URL" -v ON_ERROR_STOP=1 -f recon_pipeline.sql
--     psql "$OWNER_DATABASE_URL" -c "ALTER ROLE recon_pipeline LOGIN PASSWORD '...'"
-- then set DATABASE_URL to connect as recon_pipeline and run `recon migrate` (or any job).
-- `recon roles-sql` prints this file.
--
-- What it may do, and nothing more:
--   * own the `recon` schema (findings, incidents, repairs, audit): migrations run under it;
--   * SELECT the application tables the snapshots read;
--   * UPDATE only the columns a repair writes (each repair in sql/repairs/ is a compare-and-swap
--     UPDATE of those columns), INSERT only the rows a repair inserts (a loan only the chain
--     knows, a missing streak projection);
--   * nothing else: no DDL outside `recon`, no DELETE, no other column.
-- The table and column names are the reference schema's (sql/app/reference_schema.sql): if your
-- tables differ, change them here as you change the snapshot and repair queries.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'recon_pipeline') THEN
        CREATE ROLE recon_pipeline NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
    END IF;
END
$$;

-- The recon schema and everything already in it belong to the role (an installation that ran
-- its migrations as another role moves over; the names come from the catalog of recon itself).
DO $$
DECLARE
    relation record;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'recon') THEN
        CREATE SCHEMA recon AUTHORIZATION recon_pipeline;
    ELSE
        ALTER SCHEMA recon OWNER TO recon_pipeline;
        FOR relation IN
            SELECT c.relname, c.relkind FROM pg_class AS c
            WHERE c.relnamespace = 'recon'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
        LOOP
            EXECUTE format(CASE relation.relkind WHEN 'v' THEN 'ALTER VIEW recon.%I OWNER TO recon_pipeline'
                                                 WHEN 'm' THEN 'ALTER MATERIALIZED VIEW recon.%I OWNER TO recon_pipeline'
                                                 ELSE 'ALTER TABLE recon.%I OWNER TO recon_pipeline' END,
                           relation.relname);
        END LOOP;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO recon_pipeline;

-- Every table a snapshot reads.
GRANT SELECT ON users, streams, loans, transactions, liquidity_positions, reputation, markets,
                focus_sessions, user_streaks TO recon_pipeline;

-- Streams: released.sql, status.sql.
GRANT UPDATE (released_amount, status, updated_at) ON streams TO recon_pipeline;

-- Lending: loan_principal.sql, loan_outstanding.sql, loan_status.sql, resolve_provisional_id.sql;
-- insert_loan.sql inserts a loan the chain holds and the database lacks.
GRANT UPDATE (principal, outstanding, status, chain_loan_id, is_provisional, updated_at) ON loans TO recon_pipeline;
GRANT INSERT (id, chain_loan_id, is_provisional, borrower_address, principal, outstanding, status,
              submitted_tx_hash, created_at, updated_at) ON loans TO recon_pipeline;
GRANT UPDATE (status, updated_at) ON transactions TO recon_pipeline;
GRANT UPDATE (deposited, shares, updated_at) ON liquidity_positions TO recon_pipeline;
GRANT UPDATE (score, updated_at) ON reputation TO recon_pipeline;

-- Streaks: current_streak.sql, longest_streak.sql, last_qualified_date.sql, qualified_days.sql;
-- missing_projection.sql inserts the projection row of a participant who has none.
GRANT UPDATE (current_streak, longest_streak, last_qualified_date, qualified_days, updated_at)
    ON user_streaks TO recon_pipeline;
GRANT INSERT (user_id, current_streak, longest_streak, last_qualified_date, qualified_days, updated_at)
    ON user_streaks TO recon_pipeline;
