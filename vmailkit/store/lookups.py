"""SQL the matcher and the migrations share (a leaf module: it imports nothing)."""
from __future__ import annotations

#: The CRM lookups the automatic rules read, normalised once per CRM load (not once per matched chunk):
#: the addresses of persons that are not temporary, EMAIL contacts, and the digit tails of booking
#: codes in the forms the rule accepts (B|O|L-N, B|O|L-<brand code>-N).
MATCH_LOOKUPS_SQL = (
    """CREATE OR REPLACE TABLE match_person_email AS
    SELECT DISTINCT lower(trim(email)) AS addr, person_id FROM persons
    WHERE NOT coalesce(is_temporary, false) AND nullif(lower(trim(email)), '') IS NOT NULL""",
    """CREATE OR REPLACE TABLE match_contact_email AS
    SELECT DISTINCT lower(trim(value)) AS addr, owner_type, owner_id FROM contacts
    WHERE upper(trim(type)) = 'EMAIL' AND nullif(lower(trim(value)), '') IS NOT NULL""",
    """CREATE OR REPLACE TABLE match_booking AS
    WITH tail AS (
        SELECT reservation_id, upper(trim(booking_code)) AS bc, string_split(upper(trim(booking_code)), '-')[-1] AS num
        FROM reservations WHERE booking_code IS NOT NULL
    ),
    brand_codes AS (
        SELECT DISTINCT upper(trim(code)) AS code FROM brands WHERE nullif(trim(code), '') IS NOT NULL
    )
    SELECT reservation_id, num FROM tail WHERE regexp_full_match(bc, '[BOL]-[0-9]+')
    UNION
    SELECT t.reservation_id, t.num FROM tail t
    JOIN brand_codes b ON b.code = regexp_extract(t.bc, '^[BOL]-(.+)-[0-9]+$', 1)""",
)
