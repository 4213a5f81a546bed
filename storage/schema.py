"""The schema, built by numbered forward-only migrations.

`PRAGMA user_version` records how many migrations a database has had. A migration is never
edited once released: a change to the schema is a new entry at the end of MIGRATIONS.
"""

from __future__ import annotations

import sqlite3

from storage.errors import StartupRefused

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: tokens and the account settings.
    (
        """CREATE TABLE settings (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        ) STRICT""",
        # AUTOINCREMENT: a deleted token's id is never given to a new one, so a stale button
        # or confirmation can never act on another token.
        """CREATE TABLE tokens (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            sid TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            name_key TEXT NOT NULL UNIQUE,
            description TEXT NOT NULL,
            enabled INTEGER NOT NULL CHECK (enabled IN (0, 1)),
            api_version TEXT NOT NULL,
            access_rights TEXT NOT NULL,
            primary_contact TEXT NOT NULL,
            secret_hash BLOB NOT NULL UNIQUE,
            secret_hint TEXT NOT NULL,
            created_at INTEGER NOT NULL,
            created_by TEXT NOT NULL,
            updated_at INTEGER NOT NULL,
            updated_by TEXT NOT NULL,
            reset_at INTEGER,
            row_version INTEGER NOT NULL
        ) STRICT""",
        "CREATE INDEX tokens_by_created ON tokens (created_at, id)",
        # Last-used times live apart so that the auth check never moves a row version.
        """CREATE TABLE token_usage (
            token_id INTEGER PRIMARY KEY REFERENCES tokens (id) ON DELETE CASCADE,
            last_used_at INTEGER NOT NULL
        ) STRICT""",
    ),
    # 2: the append-only audit log; no foreign key, so history outlives its token.
    (
        """CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY,
            at INTEGER NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            token_sid TEXT,
            token_name TEXT,
            token_name_key TEXT,
            detail TEXT NOT NULL
        ) STRICT""",
        "CREATE INDEX audit_log_by_token_name ON audit_log (token_name_key)",
        """CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
        """CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
        # REPLACE deletes without firing DELETE triggers (recursive_triggers is off).
        """CREATE TRIGGER audit_log_no_replace BEFORE INSERT ON audit_log
        WHEN EXISTS (SELECT 1 FROM audit_log WHERE id = NEW.id)
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
    ),
    # 3: role mappings for Slack users and Slack user groups.
    (
        """CREATE TABLE user_roles (
            user_id TEXT PRIMARY KEY,
            role TEXT NOT NULL CHECK (role IN ('admin', 'specialist')),
            granted_by TEXT NOT NULL,
            granted_at INTEGER NOT NULL
        ) STRICT""",
        """CREATE TABLE group_roles (
            group_id TEXT PRIMARY KEY,
            role TEXT NOT NULL CHECK (role IN ('admin', 'specialist')),
            granted_by TEXT NOT NULL,
            granted_at INTEGER NOT NULL
        ) STRICT""",
    ),
    # 4: requests already applied, so that one delivered twice is applied once.
    (
        """CREATE TABLE applied_requests (
            key TEXT PRIMARY KEY,
            at INTEGER NOT NULL
        ) STRICT""",
        "CREATE INDEX applied_requests_by_time ON applied_requests (at)",
    ),
    # 5: each user's last known Slack status, read by the role check, so that a guest stays
    # without a role across a restart and the check never has to ask Slack.
    (
        # learned_at in fractional seconds: an answer to an earlier question must not
        # overwrite a later one that arrived first, even within the same second.
        """CREATE TABLE user_statuses (
            user_id TEXT PRIMARY KEY,
            status TEXT NOT NULL CHECK (status IN ('member', 'guest', 'bot', 'deactivated',
                'other_organisation', 'unknown_to_slack')),
            learned_at REAL NOT NULL
        ) STRICT""",
    ),
    # 6: tokens that expire, reminders of it, and tokens switched off when unused.
    (
        # The stop instant (a 00:00 UTC), NULL for no expiry: tokens from before stay so.
        "ALTER TABLE tokens ADD COLUMN expires_at INTEGER",
        # When the expiry was chosen: no reminder is sent for a day already past then.
        "ALTER TABLE tokens ADD COLUMN expiry_set_at INTEGER",
        "ALTER TABLE tokens ADD COLUMN enabled_at INTEGER",
        # The latest of creation, last enable, last Reset and last use (a token is idle
        # since then); the default only lets the column be added, the backfill below sets it.
        "ALTER TABLE tokens ADD COLUMN last_active_at INTEGER NOT NULL DEFAULT 0",
        """ALTER TABLE tokens ADD COLUMN disabled_reason TEXT
            CHECK (disabled_reason IN ('idle'))""",
        # The last enable of a token from before is in the audit log, by SID (never reused).
        """UPDATE tokens SET enabled_at = enables.at
        FROM (SELECT token_sid, max(at) AS at FROM audit_log
              WHERE action = 'enable' GROUP BY token_sid) AS enables
        WHERE enables.token_sid = tokens.sid""",
        """UPDATE tokens SET last_active_at = max(
            created_at,
            coalesce(reset_at, 0),
            coalesce(enabled_at, 0),
            coalesce((SELECT last_used_at FROM token_usage WHERE token_id = tokens.id), 0)
        )""",
        # The scheduler's reads: reminders of enabled tokens with an expiry, idle tokens.
        """CREATE INDEX tokens_by_expiry ON tokens (expires_at)
        WHERE expires_at IS NOT NULL AND enabled = 1""",
        # Partial, not (enabled, last_active_at): an index led by `enabled` would tempt the
        # planner away from tokens_by_expiry for the reminders' `enabled = 1`.
        """CREATE INDEX tokens_by_activity ON tokens (last_active_at)
        WHERE enabled = 1""",
        # A reminder sent, or about to be: marked before it is posted, so it is sent at
        # most once per token, reminder day (0: on expiry) and stop instant.
        """CREATE TABLE reminder_marks (
            token_id INTEGER NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
            expires_at INTEGER NOT NULL,
            days INTEGER NOT NULL CHECK (days >= 0),
            marked_at INTEGER NOT NULL,
            PRIMARY KEY (token_id, expires_at, days)
        ) STRICT""",
        # The idle period (its `last_active_at`) a token's contact was warned about.
        """CREATE TABLE idle_warnings (
            token_id INTEGER PRIMARY KEY REFERENCES tokens (id) ON DELETE CASCADE,
            idle_since INTEGER NOT NULL,
            warned_at INTEGER NOT NULL
        ) STRICT""",
    ),
    # 7: Reset with a grace window, and the secrets it retired.
    (
        # The previous secret, working until `previous_until` (never past the token's stop
        # instant). SQLite cannot add a UNIQUE column: the unique index below stands in.
        "ALTER TABLE tokens ADD COLUMN previous_secret_hash BLOB",
        "ALTER TABLE tokens ADD COLUMN previous_secret_hint TEXT",
        """ALTER TABLE tokens ADD COLUMN previous_until INTEGER
            CHECK ((previous_until IS NULL) = (previous_secret_hash IS NULL))""",
        """CREATE UNIQUE INDEX tokens_by_previous_secret ON tokens (previous_secret_hash)
        WHERE previous_secret_hash IS NOT NULL""",
        # The scheduler's read of the windows that ended by time.
        """CREATE INDEX tokens_by_previous_until ON tokens (previous_until)
        WHERE previous_until IS NOT NULL""",
        # When the previous secret last passed the auth check; NULL: not since the Reset.
        "ALTER TABLE token_usage ADD COLUMN previous_last_used_at INTEGER",
        # Digests of secrets that no longer work, kept 30 days so that the integrations
        # still presenting one can be found: how often, when last and by whom (the last
        # few presenters, as JSON), and when the token's contact was told.
        """CREATE TABLE retired_secrets (
            digest BLOB PRIMARY KEY,
            token_id INTEGER NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
            retired_at INTEGER NOT NULL,
            presented INTEGER NOT NULL DEFAULT 0 CHECK (presented >= 0),
            last_presented_at INTEGER,
            presenters TEXT NOT NULL DEFAULT '[]',
            notified_at INTEGER
        ) STRICT""",
        "CREATE INDEX retired_secrets_by_time ON retired_secrets (retired_at)",
        # A token's own (its card's summary, and Delete's cascade).
        "CREATE INDEX retired_secrets_by_token ON retired_secrets (token_id)",
        # The presented ones whose contact has not been told yet.
        """CREATE INDEX retired_secrets_to_notify ON retired_secrets (token_id)
        WHERE presented > 0 AND notified_at IS NULL""",
    ),
    # 8: secrets posted in Slack channels (the leak guard).
    (
        # When the current secret was found posted; NULL: not leaked. A Reset clears it.
        "ALTER TABLE tokens ADD COLUMN leaked_at INTEGER",
        # SQLite cannot change a CHECK constraint: the column is replaced by one that also
        # allows 'leaked' (a token the leak guard disabled), its values copied over.
        "ALTER TABLE tokens RENAME COLUMN disabled_reason TO disabled_reason_7",
        """ALTER TABLE tokens ADD COLUMN disabled_reason TEXT
            CHECK (disabled_reason IN ('idle', 'leaked'))""",
        "UPDATE tokens SET disabled_reason = disabled_reason_7 WHERE disabled_reason_7 IS NOT NULL",
        "ALTER TABLE tokens DROP COLUMN disabled_reason_7",
        # Each (message, secret) reported, so that a retry, an edit or a re-delivery of the
        # message never reports it again, across restarts too. The digest, never the secret.
        """CREATE TABLE leak_reports (
            channel TEXT NOT NULL,
            message_ts TEXT NOT NULL,
            digest BLOB NOT NULL,
            token_id INTEGER NOT NULL REFERENCES tokens (id) ON DELETE CASCADE,
            reported_at INTEGER NOT NULL,
            PRIMARY KEY (channel, message_ts, digest)
        ) STRICT""",
        # Delete's cascade.
        "CREATE INDEX leak_reports_by_token ON leak_reports (token_id)",
    ),
    # 9: App Home's summary and the tokens that need attention (storage/token_reads.py
    # says which read uses what).
    (
        # Counts that do not depend on the time, kept by the triggers below within the
        # transaction of each change: read as they are, where counting them would read an
        # index entry per token. `used`: the tokens with a stored last use.
        """CREATE TABLE token_counts (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            tokens INTEGER NOT NULL,
            disabled INTEGER NOT NULL,
            leaked INTEGER NOT NULL,
            without_expiry INTEGER NOT NULL,
            used INTEGER NOT NULL
        ) STRICT""",
        """INSERT INTO token_counts
        SELECT 1, count(*), coalesce(sum(enabled = 0), 0), coalesce(sum(leaked_at IS NOT NULL), 0),
            coalesce(sum(expires_at IS NULL), 0), (SELECT count(*) FROM token_usage)
        FROM tokens""",
        """CREATE TRIGGER token_counts_insert AFTER INSERT ON tokens
        BEGIN UPDATE token_counts SET tokens = tokens + 1, disabled = disabled + (NEW.enabled = 0),
            leaked = leaked + (NEW.leaked_at IS NOT NULL),
            without_expiry = without_expiry + (NEW.expires_at IS NULL); END""",
        # A delete's cascade to token_usage fires token_counts_unused below.
        """CREATE TRIGGER token_counts_delete AFTER DELETE ON tokens
        BEGIN UPDATE token_counts SET tokens = tokens - 1, disabled = disabled - (OLD.enabled = 0),
            leaked = leaked - (OLD.leaked_at IS NOT NULL),
            without_expiry = without_expiry - (OLD.expires_at IS NULL); END""",
        # Only for these columns: the last-used flush, which updates every used token's
        # activity, fires nothing.
        """CREATE TRIGGER token_counts_update AFTER UPDATE OF enabled, leaked_at, expires_at
        ON tokens
        BEGIN UPDATE token_counts
            SET disabled = disabled + (NEW.enabled = 0) - (OLD.enabled = 0),
            leaked = leaked + (NEW.leaked_at IS NOT NULL) - (OLD.leaked_at IS NOT NULL),
            without_expiry = without_expiry + (NEW.expires_at IS NULL) - (OLD.expires_at IS NULL);
        END""",
        """CREATE TRIGGER token_counts_used AFTER INSERT ON token_usage
        BEGIN UPDATE token_counts SET used = used + 1; END""",
        """CREATE TRIGGER token_counts_unused AFTER DELETE ON token_usage
        BEGIN UPDATE token_counts SET used = used - 1; END""",
        # Leaked tokens, newest leak first.
        "CREATE INDEX tokens_leaked ON tokens (leaked_at) WHERE leaked_at IS NOT NULL",
        # Enabled tokens without expiry, oldest first.
        """CREATE INDEX tokens_without_expiry ON tokens (created_at)
        WHERE expires_at IS NULL AND enabled = 1""",
        # Enabled tokens not used since their creation, last Reset or last enable (their
        # activity was not a use): among the tokens active within a window, the only ones
        # that may be unused within it.
        """CREATE INDEX tokens_not_used_since_event ON tokens (last_active_at)
        WHERE enabled = 1
        AND last_active_at = max(created_at, coalesce(reset_at, 0), coalesce(enabled_at, 0))""",
        # The tokens last used before a moment, counted.
        "CREATE INDEX token_usage_by_time ON token_usage (last_used_at)",
        # Retired secrets still presented, summed per token.
        """CREATE INDEX retired_secrets_presented
        ON retired_secrets (token_id, presented, last_presented_at) WHERE presented > 0""",
    ),
    # 10: the list's name search and the start-up's catalog check, by index.
    (
        # Every trigram of every name key, by token id, for a search of 3 characters or more
        # (storage/token_reads.py): case-sensitive, as the key is case-folded already, so
        # that a phrase of the search's trigrams matches exactly the keys containing it.
        # Its content is read from `tokens` itself, and kept by the triggers below.
        """CREATE VIRTUAL TABLE tokens_name_search USING fts5 (name_key,
            content = 'tokens', content_rowid = 'id',
            tokenize = 'trigram case_sensitive 1', columnsize = 0)""",
        "INSERT INTO tokens_name_search (tokens_name_search) VALUES ('rebuild')",
        """CREATE TRIGGER tokens_name_search_insert AFTER INSERT ON tokens
        BEGIN INSERT INTO tokens_name_search (rowid, name_key) VALUES (NEW.id, NEW.name_key);
        END""",
        # An external-content index forgets a row by being given the values it indexed.
        """CREATE TRIGGER tokens_name_search_delete AFTER DELETE ON tokens
        BEGIN INSERT INTO tokens_name_search (tokens_name_search, rowid, name_key)
            VALUES ('delete', OLD.id, OLD.name_key);
        END""",
        """CREATE TRIGGER tokens_name_search_update AFTER UPDATE OF id, name_key ON tokens
        BEGIN INSERT INTO tokens_name_search (tokens_name_search, rowid, name_key)
            VALUES ('delete', OLD.id, OLD.name_key);
        INSERT INTO tokens_name_search (rowid, name_key) VALUES (NEW.id, NEW.name_key);
        END""",
        # The versions and access rights in use, read at start-up one distinct value at a
        # time (storage/store.py) rather than from every token.
        "CREATE INDEX tokens_by_api_version ON tokens (api_version)",
        "CREATE INDEX tokens_by_access_rights ON tokens (access_rights)",
    ),
    # 11: App Home's count of expired tokens, by day.
    (
        # The enabled tokens with an expiry, counted by the UTC day it falls on
        # (`expires_at / 86400`), kept by the triggers below within the transaction of each
        # change: the expired ones are the days before today's, summed (a row per day, where
        # counting them read an index entry per token), and today's read by index up to
        # now. A day's row stays when its count comes back to zero.
        """CREATE TABLE token_expiry_days (
            day INTEGER PRIMARY KEY,
            tokens INTEGER NOT NULL
        ) STRICT""",
        """INSERT INTO token_expiry_days
        SELECT expires_at / 86400, count(*) FROM tokens
        WHERE expires_at IS NOT NULL AND enabled = 1 GROUP BY expires_at / 86400""",
        """CREATE TRIGGER token_expiry_days_insert AFTER INSERT ON tokens
        WHEN NEW.expires_at IS NOT NULL AND NEW.enabled = 1
        BEGIN INSERT INTO token_expiry_days (day, tokens) VALUES (NEW.expires_at / 86400, 1)
            ON CONFLICT (day) DO UPDATE SET tokens = tokens + 1;
        END""",
        """CREATE TRIGGER token_expiry_days_delete AFTER DELETE ON tokens
        WHEN OLD.expires_at IS NOT NULL AND OLD.enabled = 1
        BEGIN UPDATE token_expiry_days SET tokens = tokens - 1 WHERE day = OLD.expires_at / 86400;
        END""",
        # Only when the day a token is counted on changes (or whether it is counted): the
        # last-used flush, and every edit that leaves the expiry's day as it was, fire
        # nothing.
        """CREATE TRIGGER token_expiry_days_update AFTER UPDATE OF enabled, expires_at ON tokens
        WHEN (CASE WHEN OLD.enabled = 1 THEN OLD.expires_at / 86400 END)
            IS NOT (CASE WHEN NEW.enabled = 1 THEN NEW.expires_at / 86400 END)
        BEGIN UPDATE token_expiry_days SET tokens = tokens - 1
            WHERE OLD.enabled = 1 AND day = OLD.expires_at / 86400;
        INSERT INTO token_expiry_days (day, tokens)
            SELECT NEW.expires_at / 86400, 1 WHERE NEW.enabled = 1 AND NEW.expires_at IS NOT NULL
            ON CONFLICT (day) DO UPDATE SET tokens = tokens + 1;
        END""",
    ),
)

LATEST_VERSION = len(MIGRATIONS)


def schema_version(connection: sqlite3.Connection) -> int:
    (version,) = connection.execute("PRAGMA user_version").fetchone()
    return int(version)


def migrate(connection: sqlite3.Connection, *, target: int = LATEST_VERSION) -> int:
    """Apply the missing migrations up to `target`, each in its own transaction together
    with its version number, so that a crash leaves the database at a version it had.
    The connection must be in autocommit mode (`isolation_level=None`)."""
    current = schema_version(connection)
    if current > LATEST_VERSION:
        raise StartupRefused("TOKENDESK_DB", "was written by a newer Token Desk; upgrade first")
    for version in range(current + 1, target + 1):
        connection.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[version - 1]:
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {version}")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
    return max(current, target)
