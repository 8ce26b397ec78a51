-- Tool discovery and pinning ("rug pull" protection).

-- The latest discovery of each server's tools.
CREATE TABLE discovered_tools (
    server        TEXT NOT NULL,
    name          TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    definition    TEXT NOT NULL,   -- the tool object as discovered (JSON)
    discovered_at TEXT NOT NULL,
    PRIMARY KEY (server, name)
);

-- Approved tool definitions: only these, unchanged, are offered to agents.
CREATE TABLE pinned_tools (
    server      TEXT NOT NULL,
    name        TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    pinned_by   TEXT NOT NULL,
    pinned_at   TEXT NOT NULL,
    PRIMARY KEY (server, name)
);
