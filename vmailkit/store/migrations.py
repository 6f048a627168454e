"""Named schema migrations, applied in order on open and recorded in ``_vmailkit_migrations``.

Never edit a migration that has shipped: add a new one. The resulting tables are the public,
documented interface described in ``docs/schema.md``.
"""
from __future__ import annotations

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_core",
        """
        CREATE SEQUENCE user_id_seq START 1;
        CREATE SEQUENCE account_id_seq START 1;
        CREATE SEQUENCE email_id_seq START 1;

        CREATE TABLE users (
            user_id     INTEGER PRIMARY KEY DEFAULT nextval('user_id_seq'),
            name        VARCHAR NOT NULL UNIQUE,
            email       VARCHAR,
            created_at  TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
        );

        CREATE TABLE accounts (
            account_id      INTEGER PRIMARY KEY DEFAULT nextval('account_id_seq'),
            name            VARCHAR NOT NULL UNIQUE,
            kind            VARCHAR NOT NULL CHECK (kind IN ('general', 'personal')),
            owner_user_id   INTEGER,
            protocol        VARCHAR NOT NULL CHECK (protocol IN ('imap', 'pop3')),
            host            VARCHAR NOT NULL,
            port            INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
            security        VARCHAR NOT NULL CHECK (security IN ('ssl', 'starttls', 'plain')),
            address         VARCHAR NOT NULL,
            login           VARCHAR NOT NULL,
            secret_ref      VARCHAR NOT NULL,
            ca_file         VARCHAR,
            folder          VARCHAR NOT NULL DEFAULT 'INBOX',
            created_at      TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
        );

        CREATE TABLE subscriptions (
            user_id     INTEGER NOT NULL,
            account_id  INTEGER NOT NULL,
            created_at  TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
            PRIMARY KEY (user_id, account_id)
        );

        -- IMAP watermark: the biggest downloaded UID per user, account and folder, valid for one UIDVALIDITY.
        CREATE TABLE sync_state (
            user_id      INTEGER NOT NULL,
            account_id   INTEGER NOT NULL,
            folder       VARCHAR NOT NULL,
            uidvalidity  BIGINT NOT NULL,
            last_uid     BIGINT NOT NULL,
            updated_at   TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (user_id, account_id, folder)
        );

        -- POP3 has no ordered UIDs: the set of UIDLs each user downloaded from each account.
        CREATE TABLE sync_uidls (
            user_id        INTEGER NOT NULL,
            account_id     INTEGER NOT NULL,
            uidl           VARCHAR NOT NULL,
            downloaded_at  TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (user_id, account_id, uidl)
        );

        CREATE TABLE emails (
            email_id        BIGINT PRIMARY KEY,
            dedup_key       VARCHAR NOT NULL UNIQUE,
            message_id      VARCHAR,
            fingerprint     VARCHAR NOT NULL,
            direction       VARCHAR NOT NULL DEFAULT 'incoming',
            status          VARCHAR NOT NULL DEFAULT 'unread',
            from_address    VARCHAR,
            from_name       VARCHAR,
            to_addresses    VARCHAR[],
            cc_addresses    VARCHAR[],
            reply_to        VARCHAR[],
            subject         VARCHAR,
            sent_at         TIMESTAMPTZ,
            in_reply_to     VARCHAR,
            "references"    VARCHAR[],
            body_text       VARCHAR,
            body_html       VARCHAR,
            has_attachments BOOLEAN NOT NULL,
            size            BIGINT NOT NULL,
            raw             BLOB NOT NULL,
            raw_sha256      VARCHAR NOT NULL,
            parse_error     VARCHAR,
            parse_defects   VARCHAR[],
            downloaded_by   INTEGER,
            downloaded_at   TIMESTAMPTZ NOT NULL
        );

        -- Every place a mail was seen, with the sha256 of the exact bytes received there.
        CREATE TABLE email_locations (
            email_id       BIGINT NOT NULL,
            account_id     INTEGER NOT NULL,
            folder         VARCHAR NOT NULL,
            uidvalidity    BIGINT NOT NULL,
            uid            BIGINT,
            uidl           VARCHAR,
            raw_sha256     VARCHAR NOT NULL,
            size           BIGINT NOT NULL,
            downloaded_by  INTEGER,
            downloaded_at  TIMESTAMPTZ NOT NULL,
            loc_key        VARCHAR NOT NULL UNIQUE
        );

        -- Bytes of copies that differ from emails.raw (other transport headers): nothing received is lost.
        CREATE TABLE raw_copies (
            raw_sha256  VARCHAR PRIMARY KEY,
            email_id    BIGINT NOT NULL,
            raw         BLOB NOT NULL
        );

        CREATE TABLE attachments (
            email_id      BIGINT NOT NULL,
            part_index    INTEGER NOT NULL,
            filename      VARCHAR,
            content_type  VARCHAR NOT NULL,
            size          BIGINT NOT NULL,
            sha256        VARCHAR NOT NULL,
            is_inline     BOOLEAN NOT NULL,
            content_id    VARCHAR,
            content       BLOB NOT NULL
        );
        """,
    ),
]
