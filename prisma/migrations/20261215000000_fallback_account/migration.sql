-- AlterTable
ALTER TABLE "campaign" ADD COLUMN     "fallback_account" TEXT;

-- AlterTable
ALTER TABLE "message" ADD COLUMN     "route_account" TEXT;


-- Hand-written note: route_account is null for every message routed to its campaign's account
-- (all of them unless a fallback was used), so existing rows need no backfill. The claim reads it
-- through COALESCE(route_account, campaign.account_name); the (campaign_id, status) index already
-- serves the reroute pass, so no index is added.
