-- toolgate control plane: the audit trail (its own database file, so ingest
-- never waits on registry writes). One row per audited request; the columns
-- are the fields queries filter or group on, `record` is the full record.

CREATE TABLE audit_records (
    id         TEXT PRIMARY KEY,        -- the proxy's record id (at-least-once delivery: one row per id)
    ts_ms      INTEGER NOT NULL,        -- request arrival, Unix milliseconds (UTC)
    principal  TEXT,
    agent      TEXT,
    server     TEXT,
    tool       TEXT,
    method     TEXT,
    decision   TEXT NOT NULL,           -- allow | deny
    outcome    TEXT NOT NULL,           -- success | error | tool_error | refused | upstream_error | unknown
    session_id TEXT,
    trace_id   TEXT,
    gateway    TEXT NOT NULL,
    record     TEXT NOT NULL            -- the AuditRecord as JSON
);

-- Newest-first pages (keyset on (ts_ms, id)) and retention.
CREATE INDEX audit_records_ts ON audit_records (ts_ms, id);
-- The common filters and group-bys, each with time.
CREATE INDEX audit_records_principal ON audit_records (principal, ts_ms);
CREATE INDEX audit_records_agent ON audit_records (agent, ts_ms);
CREATE INDEX audit_records_server ON audit_records (server, ts_ms);
CREATE INDEX audit_records_tool ON audit_records (tool, ts_ms);
CREATE INDEX audit_records_decision ON audit_records (decision, ts_ms);
