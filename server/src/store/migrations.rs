//! Schema migrations, applied in order; `PRAGMA user_version` records how
//! many ran. A migration is never edited once released: add a new one.

/// Each entry upgrades the schema from version `i` to `i + 1`.
pub const MIGRATIONS: &[&str] = &[
    // 1: the initial schema. Times are Unix seconds (UTC).
    r#"
CREATE TABLE schools (
    id INTEGER PRIMARY KEY,
    uai TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    commune TEXT NOT NULL,
    departement TEXT NOT NULL,
    academie TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('ecole', 'college', 'lycee')),
    require_approval INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);

CREATE TABLE enrollment_tokens (
    id INTEGER PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    school_id INTEGER NOT NULL REFERENCES schools(id),
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    max_uses INTEGER NOT NULL CHECK (max_uses > 0),
    uses INTEGER NOT NULL DEFAULT 0,
    revoked_at INTEGER
);

CREATE TABLE machines (
    id TEXT PRIMARY KEY,
    school_id INTEGER NOT NULL REFERENCES schools(id),
    token_id INTEGER REFERENCES enrollment_tokens(id),
    hostname TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'active', 'retired')),
    enrolled_at INTEGER NOT NULL,
    last_seen INTEGER,
    checkins INTEGER NOT NULL DEFAULT 0,
    -- The latest inventory is the newest inventory_history row: keeping the
    -- (large) document out of this row keeps the per-check-in UPDATE small.
    inventory_hash TEXT NOT NULL,
    applied TEXT NOT NULL DEFAULT '[]',
    acked_seq INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX machines_by_school ON machines(school_id);

CREATE TABLE inventory_history (
    id INTEGER PRIMARY KEY,
    machine_id TEXT NOT NULL REFERENCES machines(id),
    recorded_at INTEGER NOT NULL,
    inventory_hash TEXT NOT NULL,
    inventory TEXT NOT NULL
);
CREATE INDEX inventory_history_by_machine ON inventory_history(machine_id, id);

CREATE TABLE profile_releases (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    bytes BLOB NOT NULL,
    sha256 TEXT NOT NULL,
    minisig TEXT NOT NULL,
    published_by TEXT NOT NULL,
    published_at INTEGER NOT NULL,
    UNIQUE (name, version)
);

CREATE TABLE blobs (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    bytes BLOB NOT NULL
);

CREATE TABLE release_blobs (
    release_id INTEGER NOT NULL REFERENCES profile_releases(id),
    sha256 TEXT NOT NULL REFERENCES blobs(sha256),
    PRIMARY KEY (release_id, sha256)
);

CREATE TABLE school_assignments (
    school_id INTEGER NOT NULL REFERENCES schools(id),
    profile_name TEXT NOT NULL,
    PRIMARY KEY (school_id, profile_name)
);

CREATE TABLE machine_overrides (
    machine_id TEXT NOT NULL REFERENCES machines(id),
    profile_name TEXT NOT NULL,
    include INTEGER NOT NULL,
    PRIMARY KEY (machine_id, profile_name)
);

CREATE TABLE apply_reports (
    machine_id TEXT NOT NULL REFERENCES machines(id),
    seq INTEGER NOT NULL,
    profile TEXT NOT NULL,
    version INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    report TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (machine_id, seq)
) WITHOUT ROWID;

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    login TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'school', 'auditor')),
    territory TEXT,
    created_at INTEGER NOT NULL
);

CREATE TABLE user_schools (
    user_id INTEGER NOT NULL REFERENCES users(id),
    school_id INTEGER NOT NULL REFERENCES schools(id),
    PRIMARY KEY (user_id, school_id)
);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
"#,
    // 2: which profiles a release includes, so check-ins can hand agents the
    // whole closure of what they must resolve.
    r#"
CREATE TABLE release_includes (
    release_id INTEGER NOT NULL REFERENCES profile_releases(id),
    name TEXT NOT NULL,
    PRIMARY KEY (release_id, name)
);
"#,
    // 3: the trust model — keyrings (which keys sign profiles), signed
    // catalogue indexes (which release of each profile is current), who
    // signed each release and whether a later keyring revoked its key, and
    // what each machine says of its own trust anchors.
    r#"
CREATE TABLE keyrings (
    version INTEGER PRIMARY KEY,
    bytes BLOB NOT NULL,
    signatures TEXT NOT NULL,
    key_ids TEXT NOT NULL,
    expires TEXT NOT NULL,
    published_by TEXT NOT NULL,
    published_at INTEGER NOT NULL
);
CREATE TABLE catalogue_indexes (
    version INTEGER PRIMARY KEY,
    bytes BLOB NOT NULL,
    signature TEXT NOT NULL,
    expires TEXT NOT NULL,
    published_by TEXT NOT NULL,
    published_at INTEGER NOT NULL
);
CREATE TABLE index_entries (
    index_version INTEGER NOT NULL REFERENCES catalogue_indexes(version),
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    PRIMARY KEY (index_version, name)
) WITHOUT ROWID;
ALTER TABLE profile_releases ADD COLUMN signed_by TEXT;
ALTER TABLE profile_releases ADD COLUMN revoked_at INTEGER;
ALTER TABLE machines ADD COLUMN trust_report TEXT;
"#,
    // 4: per-machine history budgets. The (machine, time) index counts a
    // machine's inventory changes of the day at check-in; the time indexes
    // let retention pruning find old rows without scanning the tables.
    r#"
CREATE INDEX inventory_history_by_machine_time ON inventory_history(machine_id, recorded_at);
CREATE INDEX inventory_history_by_time ON inventory_history(recorded_at);
CREATE INDEX apply_reports_by_time ON apply_reports(received_at);
"#,
];
