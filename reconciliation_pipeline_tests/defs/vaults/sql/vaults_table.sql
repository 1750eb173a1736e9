-- The application's table the new entity reconciles (in a real app it already exists).
CREATE TABLE vaults (
    id            NUMERIC(20,0) PRIMARY KEY,
    owner_address TEXT NOT NULL,
    balance       NUMERIC(39,0) NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now() - interval '2 days',
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
)
