-- Hand-written, before the tables that use it: UUIDv7 (RFC 9562), a millisecond timestamp then
-- random bits, so ids of rows inserted together sit together in every index on id.
CREATE FUNCTION uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
  SELECT encode(
    set_bit(set_bit(
      overlay(uuid_send(gen_random_uuid())
              PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
              FROM 1 FOR 6),
      52, 1), 53, 1),
    'hex')::uuid
$$;

-- CreateSchema
CREATE SCHEMA IF NOT EXISTS "public";

-- CreateEnum
CREATE TYPE "campaign_status" AS ENUM ('DRAFT', 'SCHEDULED', 'RUNNING', 'PAUSED', 'COMPLETED', 'CANCELLED');

-- CreateEnum
CREATE TYPE "message_status" AS ENUM ('PENDING', 'QUEUED', 'SENDING', 'UNKNOWN', 'SENT', 'DELIVERED', 'FAILED', 'EXPIRED', 'REJECTED', 'UNDELIVERABLE', 'SUPPRESSED', 'CANCELLED');

-- CreateTable
CREATE TABLE "campaign" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "name" TEXT NOT NULL,
    "account_name" TEXT NOT NULL,
    "template" TEXT NOT NULL,
    "status" "campaign_status" NOT NULL DEFAULT 'DRAFT',
    "default_region" TEXT NOT NULL DEFAULT 'AU',
    "timezone" TEXT NOT NULL DEFAULT 'Australia/Sydney',
    "scheduled_at" TIMESTAMPTZ(3),
    "started_at" TIMESTAMPTZ(3),
    "completed_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "campaign_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "message" (
    "id" UUID NOT NULL DEFAULT uuid_v7(),
    "campaign_id" UUID NOT NULL,
    "phone" TEXT NOT NULL,
    "fields" JSONB NOT NULL DEFAULT '{}',
    "status" "message_status" NOT NULL DEFAULT 'PENDING',
    "due_at" TIMESTAMPTZ(3),
    "timezone" TEXT,
    "account_name" TEXT,
    "provider_message_id" TEXT,
    "segments" INTEGER,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "error_code" TEXT,
    "error_message" TEXT,
    "queued_at" TIMESTAMPTZ(3),
    "sent_at" TIMESTAMPTZ(3),
    "final_at" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "message_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "delivery_event" (
    "id" BIGSERIAL NOT NULL,
    "account_name" TEXT NOT NULL,
    "message_id" UUID,
    "provider_message_id" TEXT,
    "provider_status" TEXT NOT NULL,
    "status" "message_status" NOT NULL,
    "error_code" TEXT,
    "description" TEXT,
    "occurred_at" TIMESTAMPTZ(3) NOT NULL,
    "received_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "dedupe_key" TEXT NOT NULL,
    "processed_at" TIMESTAMPTZ(3),
    "outcome" TEXT,
    "match_attempts" INTEGER NOT NULL DEFAULT 0,
    "retry_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "delivery_event_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "recipient_import" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "campaign_id" UUID NOT NULL,
    "phone_column" TEXT NOT NULL,
    "columns" TEXT[],
    "rows" INTEGER NOT NULL,
    "accepted" INTEGER NOT NULL,
    "rejected" INTEGER NOT NULL,
    "duplicates" INTEGER NOT NULL,
    "suppressed" INTEGER NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "recipient_import_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "import_rejection" (
    "import_id" UUID NOT NULL,
    "line" INTEGER NOT NULL,
    "reason" TEXT NOT NULL,
    "raw" TEXT NOT NULL,

    CONSTRAINT "import_rejection_pkey" PRIMARY KEY ("import_id","line")
);

-- CreateTable
CREATE TABLE "inbound_message" (
    "id" BIGSERIAL NOT NULL,
    "account_name" TEXT NOT NULL,
    "from_phone" TEXT NOT NULL,
    "to_address" TEXT NOT NULL,
    "body" TEXT NOT NULL,
    "provider_message_id" TEXT,
    "message_id" UUID,
    "campaign_id" UUID,
    "occurred_at" TIMESTAMPTZ(3) NOT NULL,
    "received_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "dedupe_key" TEXT NOT NULL,

    CONSTRAINT "inbound_message_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "suppression" (
    "phone" TEXT NOT NULL,
    "reason" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "suppression_pkey" PRIMARY KEY ("phone")
);

-- CreateTable
CREATE TABLE "campaign_counter" (
    "campaign_id" UUID NOT NULL,
    "status" "message_status" NOT NULL,
    "shard" SMALLINT NOT NULL,
    "count" INTEGER NOT NULL,

    CONSTRAINT "campaign_counter_pkey" PRIMARY KEY ("campaign_id","status","shard")
);

-- CreateIndex
CREATE INDEX "campaign_status_idx" ON "campaign"("status");

-- CreateIndex
CREATE INDEX "message_campaign_id_status_idx" ON "message"("campaign_id", "status");

-- CreateIndex
CREATE UNIQUE INDEX "message_campaign_id_phone_key" ON "message"("campaign_id", "phone");

-- CreateIndex
CREATE INDEX "delivery_event_message_id_idx" ON "delivery_event"("message_id");

-- CreateIndex
CREATE UNIQUE INDEX "delivery_event_account_name_dedupe_key_key" ON "delivery_event"("account_name", "dedupe_key");

-- CreateIndex
CREATE INDEX "recipient_import_campaign_id_idx" ON "recipient_import"("campaign_id");

-- CreateIndex
CREATE INDEX "inbound_message_campaign_id_idx" ON "inbound_message"("campaign_id");

-- CreateIndex
CREATE INDEX "inbound_message_from_phone_idx" ON "inbound_message"("from_phone");

-- CreateIndex
CREATE UNIQUE INDEX "inbound_message_account_name_dedupe_key_key" ON "inbound_message"("account_name", "dedupe_key");

-- AddForeignKey
ALTER TABLE "message" ADD CONSTRAINT "message_campaign_id_fkey" FOREIGN KEY ("campaign_id") REFERENCES "campaign"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "recipient_import" ADD CONSTRAINT "recipient_import_campaign_id_fkey" FOREIGN KEY ("campaign_id") REFERENCES "campaign"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "import_rejection" ADD CONSTRAINT "import_rejection_import_id_fkey" FOREIGN KEY ("import_id") REFERENCES "recipient_import"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "campaign_counter" ADD CONSTRAINT "campaign_counter_campaign_id_fkey" FOREIGN KEY ("campaign_id") REFERENCES "campaign"("id") ON DELETE CASCADE ON UPDATE CASCADE;


-- ---------------------------------------------------------------------------------------------
-- Hand-written below: what Prisma's schema language cannot say.
-- ---------------------------------------------------------------------------------------------

-- A message's status only moves to a higher rank (DESIGN invariant 1). Every status write that
-- can race with another (delivery reports, send results) compares ranks in its WHERE clause.
-- UNKNOWN sits below SENT so that a late send result or a delivery report resolves it.
CREATE FUNCTION message_status_rank(s message_status) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE s
    WHEN 'PENDING' THEN 0
    WHEN 'QUEUED' THEN 1
    WHEN 'SENDING' THEN 2
    WHEN 'UNKNOWN' THEN 3
    WHEN 'SENT' THEN 4
    ELSE 5 -- DELIVERED and every final failure, SUPPRESSED, CANCELLED
  END
$$;

-- Campaign counters are kept by statement-level triggers, in the same transaction as the change,
-- so they equal GROUP BY status by construction (DESIGN invariant 5) whichever code path writes.
-- A statement's deltas go to one random shard in (campaign, status) order: concurrent workers
-- rarely wait on one row, and a fixed lock order means they cannot deadlock on counters.
CREATE FUNCTION campaign_counter_on_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO campaign_counter AS c (campaign_id, status, shard, count)
  SELECT campaign_id, status, floor(random() * 16)::smallint, count(*)
  FROM inserted GROUP BY campaign_id, status ORDER BY campaign_id, status
  ON CONFLICT (campaign_id, status, shard) DO UPDATE SET count = c.count + EXCLUDED.count;
  RETURN NULL;
END $$;

CREATE FUNCTION campaign_counter_on_update() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  s smallint := floor(random() * 16)::smallint;
BEGIN
  INSERT INTO campaign_counter AS c (campaign_id, status, shard, count)
  SELECT campaign_id, status, s, sum(delta)
  FROM (
    SELECT campaign_id, status, -1 AS delta FROM before_rows
    UNION ALL
    SELECT campaign_id, status, 1 AS delta FROM after_rows
  ) d
  GROUP BY campaign_id, status HAVING sum(delta) <> 0 ORDER BY campaign_id, status
  ON CONFLICT (campaign_id, status, shard) DO UPDATE SET count = c.count + EXCLUDED.count;
  RETURN NULL;
END $$;

CREATE TRIGGER message_counter_insert AFTER INSERT ON message
  REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION campaign_counter_on_insert();
CREATE TRIGGER message_counter_update AFTER UPDATE ON message
  REFERENCING OLD TABLE AS before_rows NEW TABLE AS after_rows
  FOR EACH STATEMENT EXECUTE FUNCTION campaign_counter_on_update();
-- No DELETE trigger: messages are only deleted with their campaign, whose counters cascade away.

-- "Due to send": the planner's scan for a campaign's pending messages in due order.
CREATE INDEX message_due_idx ON message (campaign_id, due_at NULLS FIRST, id) WHERE status = 'PENDING';
-- "Find by provider id" for delivery reports that carry only the provider's id. Partial: a
-- message has no provider id until it is sent, and a million-row import should not index nulls.
CREATE INDEX message_provider_id_idx ON message (provider_message_id, account_name) WHERE provider_message_id IS NOT NULL;
-- The sweeper's scan for queued or sending messages whose job may have been lost with Redis.
CREATE INDEX message_in_flight_idx ON message (updated_at) WHERE status IN ('QUEUED', 'SENDING');
-- The folder's scan for delivery reports not yet applied.
CREATE INDEX delivery_event_unprocessed_idx ON delivery_event (id) WHERE processed_at IS NULL;
