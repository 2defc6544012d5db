-- Hand-written: SCHEDULED (handed to a provider that sends it at its due time) ranks above UNKNOWN,
-- so a late answer resolves an unknown send, and below SENT, so the provider's reports move it on.
-- A separate migration from the one that added the value (see there). The body compares enum
-- values, not text, so the function stays immutable and Postgres inlines it into every query.
CREATE OR REPLACE FUNCTION message_status_rank(s message_status) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE s
    WHEN 'PENDING' THEN 0
    WHEN 'QUEUED' THEN 1
    WHEN 'SENDING' THEN 2
    WHEN 'UNKNOWN' THEN 3
    WHEN 'SCHEDULED' THEN 4
    WHEN 'SENT' THEN 5
    ELSE 6 -- DELIVERED and every final failure, SUPPRESSED, CANCELLED
  END
$$;
