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
    // 5: the dashboard. People's accounts get a state and a scope (nodes of
    // the territory tree: académie, département, commune as
    // "département/commune", établissement by UAI, each covering what is
    // below it); server-side sessions and failed logins (rate limit shared
    // by every process on the database); personal API tokens (SHA-256);
    // and per-machine columns the overview reads instead of parsing JSON,
    // kept up to date by triggers as inventories and reports arrive.
    r#"
ALTER TABLE users ADD COLUMN disabled_at INTEGER;
CREATE TABLE user_scopes (
    user_id INTEGER NOT NULL REFERENCES users(id),
    level TEXT NOT NULL CHECK (level IN ('academie', 'departement', 'commune', 'uai')),
    value TEXT NOT NULL,
    PRIMARY KEY (user_id, level, value)
);
INSERT OR IGNORE INTO user_scopes (user_id, level, value)
    SELECT us.user_id, 'uai', s.uai FROM user_schools us JOIN schools s ON s.id = us.school_id;
INSERT OR IGNORE INTO user_scopes (user_id, level, value)
    SELECT id, 'academie', territory FROM users WHERE territory IS NOT NULL;
-- Accounts made through the older interface (user_schools, territory) get
-- the same scope nodes.
CREATE TRIGGER user_schools_scope AFTER INSERT ON user_schools
BEGIN
    INSERT OR IGNORE INTO user_scopes (user_id, level, value)
        SELECT NEW.user_id, 'uai', uai FROM schools WHERE id = NEW.school_id;
END;
CREATE TRIGGER users_territory_scope AFTER INSERT ON users
WHEN NEW.territory IS NOT NULL
BEGIN
    INSERT OR IGNORE INTO user_scopes (user_id, level, value)
        VALUES (NEW.id, 'academie', NEW.territory);
END;

CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    csrf TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    ip TEXT NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX sessions_by_user ON sessions(user_id);

CREATE TABLE login_failures (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    login TEXT NOT NULL,
    ip TEXT NOT NULL
);
CREATE INDEX login_failures_by_login ON login_failures(login, at);
CREATE INDEX login_failures_by_ip ON login_failures(ip, at);

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    token_hash TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_used INTEGER,
    revoked_at INTEGER
);

ALTER TABLE machines ADD COLUMN serial TEXT NOT NULL DEFAULT '';
ALTER TABLE machines ADD COLUMN model TEXT NOT NULL DEFAULT '';
ALTER TABLE machines ADD COLUMN win11 TEXT NOT NULL DEFAULT 'unknown';
ALTER TABLE machines ADD COLUMN agent_version TEXT NOT NULL DEFAULT '';
-- Bit flags: 1 SMART failing, 2 battery wear > 50 %, 4 a filesystem > 90 %
-- full, 8 the latest release handled was refused.
ALTER TABLE machines ADD COLUMN alerts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE machines ADD COLUMN last_outcome TEXT;
ALTER TABLE machines ADD COLUMN last_report_at INTEGER;
ALTER TABLE machines ADD COLUMN refused_reason TEXT;
CREATE INDEX machines_by_agent_version ON machines(agent_version);
CREATE INDEX schools_by_territory ON schools(academie, departement, commune);

CREATE TRIGGER machines_precompute_inventory AFTER INSERT ON inventory_history
WHEN json_valid(NEW.inventory)
BEGIN
    UPDATE machines SET
        serial = COALESCE(json_extract(NEW.inventory, '$.identity.serial.value'), ''),
        model = TRIM(COALESCE(json_extract(NEW.inventory, '$.identity.vendor.value'), '')
            || ' ' || COALESCE(json_extract(NEW.inventory, '$.identity.product.value'), '')),
        win11 = COALESCE(json_extract(NEW.inventory, '$.windows11.status'), 'unknown'),
        agent_version = COALESCE(json_extract(NEW.inventory, '$.agent_version'), ''),
        alerts = (alerts & 8)
            | (CASE WHEN EXISTS (SELECT 1 FROM json_each(NEW.inventory, '$.storage.disks.value') d
                   WHERE json_extract(d.value, '$.smart.value.health') = 'failing') THEN 1 ELSE 0 END)
            | (CASE WHEN EXISTS (SELECT 1 FROM json_each(NEW.inventory, '$.batteries.value') b
                   WHERE json_extract(b.value, '$.wear_percent.value') > 50) THEN 2 ELSE 0 END)
            | (CASE WHEN EXISTS (SELECT 1 FROM json_each(NEW.inventory, '$.storage.filesystems.value') f
                   WHERE json_extract(f.value, '$.usage.value.used_percent') > 90) THEN 4 ELSE 0 END)
    WHERE id = NEW.machine_id;
END;

CREATE TRIGGER machines_precompute_report AFTER INSERT ON apply_reports
WHEN json_valid(NEW.report)
BEGIN
    UPDATE machines SET
        last_outcome = NEW.outcome,
        last_report_at = NEW.received_at,
        refused_reason = CASE WHEN NEW.outcome = 'refused'
            THEN NEW.profile || ' v' || NEW.version || ' : '
                || COALESCE(json_extract(NEW.report, '$.reason'), '?')
                || COALESCE(' (' || json_extract(NEW.report, '$.message') || ')', '')
            ELSE refused_reason END,
        alerts = CASE WHEN NEW.outcome = 'refused' THEN alerts | 8
            WHEN NEW.outcome = 'applied' THEN alerts & ~8 ELSE alerts END
    WHERE id = NEW.machine_id;
END;
"#,
    // 6: fills the dashboard's precomputed columns (migration 5) for
    // machines whose latest inventory and report predate it: the same
    // expressions as migration 5's triggers, over each machine's newest
    // inventory_history row and newest apply report.
    r#"
UPDATE machines SET
    serial = COALESCE(json_extract(h.inventory, '$.identity.serial.value'), ''),
    model = TRIM(COALESCE(json_extract(h.inventory, '$.identity.vendor.value'), '')
        || ' ' || COALESCE(json_extract(h.inventory, '$.identity.product.value'), '')),
    win11 = COALESCE(json_extract(h.inventory, '$.windows11.status'), 'unknown'),
    agent_version = COALESCE(json_extract(h.inventory, '$.agent_version'), ''),
    alerts = (machines.alerts & 8)
        | (CASE WHEN EXISTS (SELECT 1 FROM json_each(h.inventory, '$.storage.disks.value') d
               WHERE json_extract(d.value, '$.smart.value.health') = 'failing') THEN 1 ELSE 0 END)
        | (CASE WHEN EXISTS (SELECT 1 FROM json_each(h.inventory, '$.batteries.value') b
               WHERE json_extract(b.value, '$.wear_percent.value') > 50) THEN 2 ELSE 0 END)
        | (CASE WHEN EXISTS (SELECT 1 FROM json_each(h.inventory, '$.storage.filesystems.value') f
               WHERE json_extract(f.value, '$.usage.value.used_percent') > 90) THEN 4 ELSE 0 END)
FROM (SELECT machine_id, inventory FROM inventory_history
      WHERE id IN (SELECT MAX(id) FROM inventory_history GROUP BY machine_id)) AS h
WHERE h.machine_id = machines.id AND json_valid(h.inventory);

UPDATE machines SET
    last_outcome = r.outcome,
    last_report_at = r.received_at,
    refused_reason = CASE WHEN r.outcome = 'refused'
        THEN r.profile || ' v' || r.version || ' : '
            || COALESCE(json_extract(r.report, '$.reason'), '?')
            || COALESCE(' (' || json_extract(r.report, '$.message') || ')', '')
        ELSE machines.refused_reason END,
    alerts = CASE WHEN r.outcome = 'refused' THEN machines.alerts | 8
        WHEN r.outcome = 'applied' THEN machines.alerts & ~8 ELSE machines.alerts END
FROM (SELECT a.machine_id, a.outcome, a.received_at, a.profile, a.version, a.report
      FROM apply_reports a
      WHERE a.seq = (SELECT MAX(seq) FROM apply_reports b WHERE b.machine_id = a.machine_id)
        AND json_valid(a.report)) AS r
WHERE r.machine_id = machines.id;
"#,
    // 7: the collectivités' audit. One row of facts per machine, derived
    // from its latest inventory when it arrives (server/src/audit/facts.rs,
    // Windows 11 verdict recomputed by the server) and from its applied
    // profiles at each check-in, so audit pages count plain columns and
    // never parse an inventory. Machines enrolled before this migration get
    // their row at the next `serve` (audit::backfill), as do rows computed
    // by another server version (`computed_by`).
    r#"
CREATE TABLE audit_facts (
    machine_id TEXT PRIMARY KEY REFERENCES machines(id),
    computed_by TEXT NOT NULL DEFAULT '',
    computed_at INTEGER NOT NULL DEFAULT 0,
    readable INTEGER NOT NULL DEFAULT 0,
    class TEXT NOT NULL DEFAULT 'other' CHECK (class IN ('laptop', 'desktop', 'other')),
    chassis TEXT,
    vendor TEXT,
    model TEXT,
    serial TEXT,
    cpu_model TEXT,
    cpu_generation TEXT,
    cpu_year INTEGER,
    bios_year INTEGER,
    build_year INTEGER,
    age_basis TEXT,
    ram_bytes INTEGER,
    ram_modules INTEGER,
    ram_slots INTEGER,
    ram_free_slots INTEGER,
    ram_replaceable INTEGER,
    disk_kind TEXT,
    disk_bytes INTEGER,
    smart TEXT,
    battery_wear INTEGER,
    has_battery INTEGER,
    uefi INTEGER,
    secure_boot TEXT,
    tpm TEXT,
    win11 TEXT NOT NULL DEFAULT 'unknown',
    blocker_tpm INTEGER NOT NULL DEFAULT 0,
    blocker_cpu INTEGER NOT NULL DEFAULT 0,
    blocker_ram INTEGER NOT NULL DEFAULT 0,
    blocker_disk INTEGER NOT NULL DEFAULT 0,
    blocker_uefi INTEGER NOT NULL DEFAULT 0,
    blocker_secure_boot INTEGER NOT NULL DEFAULT 0,
    os_name TEXT,
    os_version TEXT,
    windows_oem_licence INTEGER,
    profiles TEXT NOT NULL DEFAULT ''
);
"#,
    // 8 (inventory storage): each distinct package list once, deflate-
    // compressed and content-addressed (`software_lists`), the list each
    // machine has (`machine_software`); history rows reference their list
    // and are deflate-compressed into `packed` once superseded
    // (store/sqlite/inventory.rs). Portable SQL.
    r#"
CREATE TABLE software_lists (
    hash TEXT PRIMARY KEY,
    body BLOB NOT NULL
);
CREATE TABLE machine_software (
    machine_id TEXT PRIMARY KEY REFERENCES machines(id),
    hash TEXT NOT NULL
);
CREATE INDEX machine_software_by_hash ON machine_software(hash);
ALTER TABLE inventory_history ADD COLUMN packed BLOB;
"#,
    // 9: the audit learns what judged each processor for Windows 11
    // (`list`: Microsoft's list, `estimate`: the family / model rule) and
    // how many external screens each machine uses (reused equipment too).
    // Existing rows are recomputed at the next `serve`: the facts version
    // changed (audit::facts_version). Portable SQL.
    r#"
ALTER TABLE audit_facts ADD COLUMN cpu_basis TEXT;
ALTER TABLE audit_facts ADD COLUMN screens INTEGER;
"#,
    // 10: a package list may be stored as a delta of a whole list, `base`
    // (store/list_delta.rs): a weekly upgrade writes a few hundred bytes
    // instead of ≈ 50 KB. Lists stored before are whole (`base` NULL).
    // The index finds the deltas of a list before it is deleted. Portable
    // SQL.
    r#"
ALTER TABLE software_lists ADD COLUMN base TEXT;
CREATE INDEX software_lists_by_base ON software_lists(base) WHERE base IS NOT NULL;
"#,
];
