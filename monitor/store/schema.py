"""The SQLite schema as an ordered list of forward migrations.

``PRAGMA user_version`` holds the number of migrations applied. A new release appends a
migration; it never edits an old one, so any older store upgrades in place on open.
Instants are stored as integer Unix seconds (UTC): exact to the second, cheap to compare and sum.
"""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: messages, conversations, threading keys, mailbox locations, cursors, alert outbox.
    """
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE conversations (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        subject TEXT NOT NULL DEFAULT '',
        customer TEXT NOT NULL DEFAULT '',
        customer_name TEXT NOT NULL DEFAULT '',
        link TEXT,
        first_message_at INTEGER NOT NULL,
        last_message_at INTEGER NOT NULL,
        policy TEXT,
        policy_reason TEXT,
        updated_at INTEGER NOT NULL,
        pruned_at INTEGER  -- messages deleted after `retention`; the row and totals stay
    );
    CREATE INDEX conversations_source ON conversations (source, last_message_at);
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        identity TEXT NOT NULL,
        conversation_id INTEGER NOT NULL REFERENCES conversations (id),
        timestamp INTEGER NOT NULL,
        direction TEXT NOT NULL,
        reason TEXT NOT NULL,
        author TEXT NOT NULL DEFAULT '',
        author_name TEXT NOT NULL DEFAULT '',
        subject TEXT NOT NULL DEFAULT '',
        recipients TEXT NOT NULL DEFAULT '',
        message_id TEXT,
        in_reply_to TEXT NOT NULL DEFAULT '',
        refs TEXT NOT NULL DEFAULT '',
        gm_thread_id TEXT,
        subject_key TEXT NOT NULL DEFAULT '',
        customer TEXT NOT NULL DEFAULT '',
        folder TEXT NOT NULL DEFAULT '',
        priority TEXT,
        tags TEXT NOT NULL DEFAULT '',
        link TEXT,
        attributes TEXT NOT NULL DEFAULT '{}',
        first_seen_at INTEGER NOT NULL,
        -- 'mail' messages live in mailbox folders, 'api' ones (tickets) do not
        location_kind TEXT NOT NULL DEFAULT 'mail',
        removed_at INTEGER,
        UNIQUE (source, identity)
    );
    CREATE INDEX messages_conversation ON messages (conversation_id, timestamp);
    CREATE INDEX messages_subject ON messages (source, customer, subject_key, timestamp);
    CREATE TABLE thread_keys (
        source TEXT NOT NULL,
        key TEXT NOT NULL,
        conversation_id INTEGER NOT NULL,
        PRIMARY KEY (source, key)
    ) WITHOUT ROWID;
    CREATE INDEX thread_keys_conversation ON thread_keys (conversation_id);
    CREATE TABLE locations (
        source TEXT NOT NULL,
        folder TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        uid INTEGER NOT NULL,
        message_id INTEGER NOT NULL REFERENCES messages (id),
        PRIMARY KEY (source, folder, uidvalidity, uid)
    ) WITHOUT ROWID;
    CREATE INDEX locations_message ON locations (message_id);
    CREATE TABLE cursors (
        source TEXT NOT NULL,
        folder TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        last_uid INTEGER NOT NULL,
        highest_modseq INTEGER,
        last_reconciled INTEGER,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (source, folder)
    );
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        dedup_key TEXT NOT NULL UNIQUE,
        conversation_id INTEGER,
        channel TEXT NOT NULL,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        send_after INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        sent_at INTEGER,
        remote_ref TEXT
    );
    CREATE INDEX outbox_pending ON outbox (sent_at, send_after);
    """,
    # 2: the SLA evaluation: each conversation's current clock, and every clock's history.
    """
    ALTER TABLE conversations ADD COLUMN state TEXT;  -- ok, warning, breached, answered, closed
    ALTER TABLE conversations ADD COLUMN clock_kind TEXT;
    ALTER TABLE conversations ADD COLUMN clock_started_at INTEGER;
    ALTER TABLE conversations ADD COLUMN waited_seconds INTEGER;  -- business seconds
    ALTER TABLE conversations ADD COLUMN target_seconds INTEGER;
    ALTER TABLE conversations ADD COLUMN due_at INTEGER;
    ALTER TABLE conversations ADD COLUMN evaluated_at INTEGER;
    CREATE INDEX conversations_state ON conversations (state);
    CREATE INDEX conversations_updated ON conversations (updated_at);
    CREATE TABLE clocks (
        conversation_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        source TEXT NOT NULL,
        policy TEXT NOT NULL,
        kind TEXT NOT NULL,
        started_at INTEGER NOT NULL,
        stopped_at INTEGER,
        stop_reason TEXT,
        responder TEXT NOT NULL DEFAULT '',
        target_seconds INTEGER NOT NULL,
        business_seconds INTEGER NOT NULL,
        calendar_seconds INTEGER NOT NULL,
        state TEXT NOT NULL,
        breached INTEGER NOT NULL,
        due_at INTEGER NOT NULL,
        PRIMARY KEY (conversation_id, seq)
    );
    CREATE INDEX clocks_totals ON clocks (source, policy, kind, state);
    """,
    # 3: running totals behind the metrics' counters and histograms (kept in step with the
    # clocks table, so a scrape reads a few rows and a restart neither resets nor recounts),
    # each source's last poll, conversations merged away, and alert delivery failures.
    """
    CREATE TABLE clock_totals (
        source TEXT NOT NULL,
        policy TEXT NOT NULL,
        kind TEXT NOT NULL,
        replies_within INTEGER NOT NULL DEFAULT 0,
        replies_late INTEGER NOT NULL DEFAULT 0,
        breaches INTEGER NOT NULL DEFAULT 0,
        closed INTEGER NOT NULL DEFAULT 0,
        response_sum INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (source, policy, kind)
    );
    CREATE TABLE response_buckets (
        source TEXT NOT NULL,
        policy TEXT NOT NULL,
        kind TEXT NOT NULL,
        le INTEGER NOT NULL,  -- upper bound in seconds, -1 for +Inf; counts are per bucket
        count INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (source, policy, kind, le)
    );
    CREATE TABLE source_status (
        source TEXT PRIMARY KEY,
        up INTEGER NOT NULL,
        last_attempt INTEGER NOT NULL,
        last_success INTEGER,
        last_duration REAL NOT NULL,
        last_error TEXT
    );
    CREATE TABLE merged_conversations (
        conversation_id INTEGER PRIMARY KEY
    );
    CREATE TABLE delivery_failures (
        channel TEXT PRIMARY KEY,
        count INTEGER NOT NULL DEFAULT 0
    );
    """,
    # 4: helpdesk sources: ticket status changes, and each source's incremental checkpoints
    # (export cursors, updated-since times) saved with the batch they cover.
    """
    ALTER TABLE messages ADD COLUMN status TEXT;
    CREATE TABLE checkpoints (
        source TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (source, key)
    );
    """,
    # 5: alert delivery: each outbox row's state, the clock it belongs to (for Slack threads),
    # and the channel id Slack answered with (chat.update needs it).
    """
    ALTER TABLE outbox ADD COLUMN state TEXT NOT NULL DEFAULT 'pending';
    ALTER TABLE outbox ADD COLUMN thread_key TEXT;
    ALTER TABLE outbox ADD COLUMN stage TEXT NOT NULL DEFAULT '';
    ALTER TABLE outbox ADD COLUMN remote_channel TEXT;
    CREATE INDEX outbox_due ON outbox (state, send_after);
    CREATE INDEX outbox_thread ON outbox (thread_key);
    """,
    # 6: a change counter per conversation. Every write that changes what a conversation holds
    # (a message stored, removed or back, a merge) adds one to ``revision``; an evaluation
    # records the revision it read the messages at. "Needs a new look" is then a comparison
    # of two numbers written in the same transactions as the data, never of wall-clock times,
    # so an evaluation that runs while a poll is still reading can never hide that poll's
    # messages. Existing stores start with every conversation due for one full evaluation.
    # And the outbox marks the alerts found due at the end of a first sync (history).
    """
    ALTER TABLE conversations ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE conversations ADD COLUMN evaluated_revision INTEGER;
    CREATE INDEX conversations_unevaluated ON conversations (id)
        WHERE evaluated_revision IS NULL OR evaluated_revision < revision;
    -- alerts that were already due when a source's first sync ended: sent as one summary
    ALTER TABLE outbox ADD COLUMN catch_up INTEGER NOT NULL DEFAULT 0;
    """,
    # 7: what people decided about a clock ("no reply needed", "snooze"), from the command
    # line or Slack. The table is an inbox: the command line may append to it while the daemon
    # holds the store (SQLite serializes the one INSERT), and the writer takes each new row in
    # (``applied_at``) at its next evaluation. Rows are never updated otherwise nor deleted:
    # they are the record `explain` shows. And the running total of dismissed clocks.
    """
    CREATE TABLE actions (
        id INTEGER PRIMARY KEY,
        conversation_id INTEGER NOT NULL,
        thread_key TEXT NOT NULL,  -- the clock acted on: conversation:kind:started_at
        kind TEXT NOT NULL,  -- dismiss | snooze
        at INTEGER NOT NULL,  -- when it was decided
        until INTEGER,  -- snooze: alerts held until then
        actor TEXT NOT NULL,  -- the OS user (command line) or the Slack user id
        actor_name TEXT NOT NULL DEFAULT '',  -- the Slack user's name
        via TEXT NOT NULL,  -- cli | slack
        reason TEXT NOT NULL DEFAULT '',
        applied_at INTEGER  -- when the writer took it in; NULL until then
    );
    CREATE INDEX actions_conversation ON actions (conversation_id, at);
    CREATE INDEX actions_thread ON actions (thread_key, kind);
    CREATE INDEX actions_snoozes ON actions (kind, until);
    CREATE INDEX actions_new ON actions (id) WHERE applied_at IS NULL;
    ALTER TABLE clock_totals ADD COLUMN dismissed INTEGER NOT NULL DEFAULT 0;
    """,
    # 8: a customer message that is only a closing phrase ("Thanks!") keeps the few words that
    # made it so (at most 40 characters; never the body), and it then starts no clock; a mail's
    # fingerprint (its From and Date) tells apart two messages that share one Message-ID.
    """
    ALTER TABLE messages ADD COLUMN closing TEXT;
    ALTER TABLE messages ADD COLUMN fingerprint TEXT NOT NULL DEFAULT '';
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)
