-- AlterEnum
ALTER TYPE "message_status" ADD VALUE 'SCHEDULED';

-- AlterTable
ALTER TABLE "campaign" ADD COLUMN     "max_lateness_ms" INTEGER,
ADD COLUMN     "send_window" JSONB;

-- ---------------------------------------------------------------------------------------------
-- Hand-written below.
-- ---------------------------------------------------------------------------------------------

-- SCHEDULED (handed to a provider that sends it at its due time) ranks above UNKNOWN, so a late
-- answer resolves an unknown send, and below SENT, so the provider's reports move it on.
-- The value is compared as text: a migration runs as one transaction, and Postgres refuses to use
-- an enum value in the transaction that added it.
CREATE OR REPLACE FUNCTION message_status_rank(s message_status) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE s::text
    WHEN 'PENDING' THEN 0
    WHEN 'QUEUED' THEN 1
    WHEN 'SENDING' THEN 2
    WHEN 'UNKNOWN' THEN 3
    WHEN 'SCHEDULED' THEN 4
    WHEN 'SENT' THEN 5
    ELSE 6 -- DELIVERED and every final failure, SUPPRESSED, CANCELLED
  END
$$;
