-- toolgate control plane: runtime state (config/ holds the declarative catalog).

-- Snapshot versions stay monotonic across restarts.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO meta (key, value) VALUES ('snapshot_version', 0);

-- Users and agents created through the API (config/ may define more).
CREATE TABLE principals (
    name       TEXT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('user', 'agent')),
    teams      TEXT NOT NULL DEFAULT '[]',   -- JSON array of team names
    created_at TEXT NOT NULL
);

-- Offboarding: disables a principal from config/ or from the API.
CREATE TABLE disabled_principals (
    name        TEXT PRIMARY KEY,
    disabled_at TEXT NOT NULL
);

-- Gateway tokens issued through the API: only the SHA-256 digest is kept.
CREATE TABLE tokens (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    principal  TEXT NOT NULL,
    name       TEXT NOT NULL,
    sha256     TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX tokens_by_principal ON tokens (principal);

-- Servers registered through the API (JSON of the catalog's server schema).
CREATE TABLE servers (
    name       TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- Approval decisions; they override the status written in config/.
CREATE TABLE server_status (
    server     TEXT PRIMARY KEY,
    status     TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'deprecated', 'blocked')),
    changed_by TEXT NOT NULL,
    changed_at TEXT NOT NULL
);

-- Secrets set through the API (referenced as store:NAME). Write-only.
CREATE TABLE secrets (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Every mutation: who changed what, when.
CREATE TABLE changes (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     TEXT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
