-- Automatic certificates (issue 19): the ACME account and the current certificate, shared by
-- every instance on one database. Each value is sealed with the data keyring
-- (`crate::field_keys`, field `acme_state.sealed`; row 1 the account, row 2 the certificate
-- and its key), so neither private key is ever stored in clear.
CREATE TABLE acme_state (
    id BIGINT PRIMARY KEY,
    sealed TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
