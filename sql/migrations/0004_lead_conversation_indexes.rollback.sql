DROP INDEX CONCURRENTLY IF EXISTS public.idx_leads_user_status;
DROP INDEX CONCURRENTLY IF EXISTS public.idx_leads_created_score;
DROP INDEX CONCURRENTLY IF EXISTS public.idx_leads_email;
DROP INDEX CONCURRENTLY IF EXISTS public.idx_messages_conversation_created;
DROP INDEX CONCURRENTLY IF EXISTS public.idx_events_lead_timestamp;
DROP INDEX CONCURRENTLY IF EXISTS public.idx_social_engagement_lead;
