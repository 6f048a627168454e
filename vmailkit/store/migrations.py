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
    (
        "0002_crm_links",
        """
        -- CRM reference data: replaced as a whole by `vmailkit crm load`; extra input columns are kept
        -- after the required ones listed here (a load recreates the table from the loaded data).
        CREATE TABLE persons (
            person_id     BIGINT NOT NULL,
            first_name    VARCHAR,
            last_name     VARCHAR,
            email         VARCHAR,
            is_temporary  BOOLEAN NOT NULL DEFAULT false
        );
        CREATE TABLE customers (
            customer_id     BIGINT NOT NULL,
            name            VARCHAR,
            main_person_id  BIGINT
        );
        CREATE TABLE suppliers (
            supplier_id     BIGINT NOT NULL,
            name            VARCHAR,
            main_person_id  BIGINT
        );
        CREATE TABLE contacts (
            contact_id  BIGINT NOT NULL,
            owner_type  VARCHAR NOT NULL,
            owner_id    BIGINT NOT NULL,
            type        VARCHAR,
            value       VARCHAR
        );
        CREATE TABLE brands (
            brand_id  BIGINT NOT NULL,
            code      VARCHAR
        );
        CREATE TABLE reservations (
            reservation_id  BIGINT NOT NULL,
            booking_code    VARCHAR,
            customer_id     BIGINT,
            brand_id        BIGINT
        );
        CREATE TABLE quotes (
            quote_id     BIGINT NOT NULL,
            code         VARCHAR,
            supplier_id  BIGINT
        );
        CREATE TABLE customer_invoices (
            invoice_id   BIGINT NOT NULL,
            number       VARCHAR,
            customer_id  BIGINT
        );
        CREATE TABLE products (
            product_id  BIGINT NOT NULL,
            code        VARCHAR,
            name        VARCHAR
        );

        -- Links between a mail and a CRM record, automatic (with the rule that made it) or manual.
        CREATE TABLE email_links (
            email_id     BIGINT NOT NULL,
            entity_type  VARCHAR NOT NULL CHECK (entity_type IN
                             ('customer', 'supplier', 'reservation', 'quote', 'invoice', 'product', 'person')),
            entity_id    BIGINT NOT NULL,
            origin       VARCHAR NOT NULL CHECK (origin IN ('auto', 'manual')),
            rule         VARCHAR,
            linked_by    VARCHAR,
            linked_at    TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
            PRIMARY KEY (email_id, entity_type, entity_id)
        );

        -- Links a user removed: automatic matching never adds them again.
        CREATE TABLE email_link_rejections (
            email_id     BIGINT NOT NULL,
            entity_type  VARCHAR NOT NULL,
            entity_id    BIGINT NOT NULL,
            origin       VARCHAR NOT NULL,
            rule         VARCHAR,
            rejected_by  VARCHAR,
            rejected_at  TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
            PRIMARY KEY (email_id, entity_type, entity_id)
        );

        -- Records a rule found but could not decide on (a number matching several reservations).
        CREATE TABLE email_link_candidates (
            email_id     BIGINT NOT NULL,
            entity_type  VARCHAR NOT NULL,
            entity_id    BIGINT NOT NULL,
            rule         VARCHAR NOT NULL,
            matched      VARCHAR,
            found_at     TIMESTAMPTZ NOT NULL DEFAULT current_timestamp,
            PRIMARY KEY (email_id, entity_type, entity_id)
        );

        -- Every link with the display name of its record (NULL when the record is no longer loaded).
        CREATE VIEW email_relations AS
        SELECT l.email_id, l.entity_type, l.entity_id,
               CASE l.entity_type
                   WHEN 'customer' THEN (SELECT max(c.name) FROM customers c WHERE c.customer_id = l.entity_id)
                   WHEN 'supplier' THEN (SELECT max(s.name) FROM suppliers s WHERE s.supplier_id = l.entity_id)
                   WHEN 'reservation' THEN (SELECT max(r.booking_code) FROM reservations r WHERE r.reservation_id = l.entity_id)
                   WHEN 'quote' THEN (SELECT max(q.code) FROM quotes q WHERE q.quote_id = l.entity_id)
                   WHEN 'invoice' THEN (SELECT max(i.number) FROM customer_invoices i WHERE i.invoice_id = l.entity_id)
                   WHEN 'product' THEN (SELECT max(concat_ws(' ', p.code, p.name)) FROM products p WHERE p.product_id = l.entity_id)
                   WHEN 'person' THEN (SELECT max(coalesce(nullif(concat_ws(' ', p.first_name, p.last_name), ''), p.email))
                                       FROM persons p WHERE p.person_id = l.entity_id)
               END AS display_name,
               l.origin, l.rule, l.linked_by, l.linked_at
        FROM email_links l;

        -- Each mail with its "related to" count (how many records it is linked to).
        CREATE VIEW emails_with_relations AS
        SELECT e.email_id, e.sent_at, e.from_address, e.from_name, e.subject, e.status, e.direction,
               coalesce(k.related_count, 0) AS related_count
        FROM emails e
        LEFT JOIN (SELECT email_id, count(*) AS related_count FROM email_links GROUP BY email_id) k
               ON k.email_id = e.email_id;
        """,
    ),
    (
        "0003_smtp_outgoing",
        """
        -- How an account sends: its SMTP server. secret_ref is a reference, never a password.
        CREATE TABLE account_smtp (
            account_id  INTEGER PRIMARY KEY,
            host        VARCHAR NOT NULL,
            port        INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
            security    VARCHAR NOT NULL CHECK (security IN ('ssl', 'starttls', 'plain')),
            login       VARCHAR NOT NULL,
            secret_ref  VARCHAR NOT NULL,
            ca_file     VARCHAR,
            updated_at  TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
        );

        -- One row per mail vmailkit sent (emails.direction = 'outgoing'): through which account, to whom,
        -- in reply to which mail, what the SMTP server answered, and the copy appended to the Sent folder.
        CREATE TABLE email_sends (
            email_id              BIGINT PRIMARY KEY,
            account_id            INTEGER NOT NULL,
            in_reply_to_email_id  BIGINT,
            reply_all             BOOLEAN NOT NULL DEFAULT false,
            envelope_from         VARCHAR NOT NULL,
            envelope_to           VARCHAR[] NOT NULL,
            smtp_host             VARCHAR NOT NULL,
            smtp_port             INTEGER NOT NULL,
            smtp_response         VARCHAR,
            sent_by               INTEGER,
            sent_at               TIMESTAMPTZ NOT NULL,
            sent_folder           VARCHAR,
            sent_uidvalidity      BIGINT,
            sent_uid              BIGINT,
            sent_folder_error     VARCHAR
        );
        """,
    ),
    (
        "0004_attachment_places",
        """
        -- Large attachments are kept as a place in emails.raw (offset, length, encoding) instead of a
        -- second, decoded copy; the view `attachments` decodes them on read. Rows written before this
        -- migration keep their copy in `content`.
        ALTER TABLE attachments RENAME TO attachment_parts;
        ALTER TABLE attachment_parts ALTER COLUMN content DROP NOT NULL;
        ALTER TABLE attachment_parts ADD COLUMN content_offset BIGINT;
        ALTER TABLE attachment_parts ADD COLUMN content_length BIGINT;
        ALTER TABLE attachment_parts ADD COLUMN content_encoding VARCHAR;

        CREATE VIEW attachments AS
        SELECT p.email_id, p.part_index, p.filename, p.content_type, p.size, p.sha256, p.is_inline,
               p.content_id,
               CASE p.content_encoding
                   WHEN 'base64' THEN from_base64(replace(replace(decode(
                       e.raw[p.content_offset + 1 : p.content_offset + p.content_length]), chr(13), ''), chr(10), ''))
                   WHEN 'identity' THEN e.raw[p.content_offset + 1 : p.content_offset + p.content_length]
                   ELSE p.content
               END AS content
        FROM attachment_parts p JOIN emails e USING (email_id);
        """,
    ),
    (
        "0005_identity_rule",
        # which rule made emails.dedup_key; mails stored before this version were keyed by Message-ID and
        # a fingerprint of Date/From/Subject/body, and are re-keyed by vmailkit.ingest on the next import
        """
        CREATE TABLE _vmailkit_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
        INSERT INTO _vmailkit_meta
            SELECT 'identity_rule', CASE WHEN EXISTS (SELECT 1 FROM emails) THEN 'fingerprint-1' ELSE 'none' END;
        """,
    ),
    (
        "0006_oauth_health",
        """
        CREATE TABLE account_oauth (
            account_id         INTEGER PRIMARY KEY,
            provider           VARCHAR NOT NULL CHECK (provider IN ('microsoft', 'google', 'generic')),
            client_id          VARCHAR NOT NULL,
            client_secret_ref  VARCHAR,
            tenant             VARCHAR,
            token_url          VARCHAR,
            auth_url           VARCHAR,
            device_url         VARCHAR,
            scopes             VARCHAR[] NOT NULL,
            updated_at         TIMESTAMPTZ NOT NULL DEFAULT current_timestamp
        );
        CREATE TABLE account_health (
            account_id          INTEGER PRIMARY KEY,
            last_check_at       TIMESTAMPTZ,
            last_download_at    TIMESTAMPTZ,
            last_error          VARCHAR,
            last_error_at       TIMESTAMPTZ,
            failing_since       TIMESTAMPTZ,
            grant_refreshed_at  TIMESTAMPTZ
        );
        """,
    ),
]
