-- Teams and policies created through the API (config/ may define more).
CREATE TABLE teams (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL
);

CREATE TABLE policies (
    name       TEXT PRIMARY KEY,
    definition TEXT NOT NULL,   -- JSON of the catalog's policy schema
    created_at TEXT NOT NULL
);
