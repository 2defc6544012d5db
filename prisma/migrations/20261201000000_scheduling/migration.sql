-- AlterEnum
ALTER TYPE "message_status" ADD VALUE 'SCHEDULED';

-- AlterTable
ALTER TABLE "campaign" ADD COLUMN     "max_lateness_ms" INTEGER,
ADD COLUMN     "send_window" JSONB;

-- The status rank learns SCHEDULED in the next migration: Postgres refuses to use an enum value
-- in the transaction that added it, and each migration runs as one transaction.
