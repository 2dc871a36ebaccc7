-- Rollback of phase 1: DROP INDEX CONCURRENTLY does not block the application's reads or writes.
DROP INDEX CONCURRENTLY IF EXISTS public.idx_message_events_user_status_created;
DROP INDEX CONCURRENTLY IF EXISTS public.idx_message_events_user_channel_status;
DROP INDEX CONCURRENTLY IF EXISTS public.idx_message_events_user_contact_created;
DROP INDEX CONCURRENTLY IF EXISTS public.idx_message_events_user_created_direction;
DROP INDEX CONCURRENTLY IF EXISTS public.idx_leads_p_score_scored_at;
DROP INDEX CONCURRENTLY IF EXISTS public.idx_leads_next_followup;
DROP INDEX CONCURRENTLY IF EXISTS public.idx_leads_status_created;
DROP INDEX CONCURRENTLY IF EXISTS public.idx_crm_notes_user_contact_created;
DROP INDEX CONCURRENTLY IF EXISTS public.idx_crm_notes_user_lead_created;
DROP INDEX CONCURRENTLY IF EXISTS public.idx_rlhf_sessions_created_outcome;
DROP INDEX CONCURRENTLY IF EXISTS public.idx_dm_conversations_user_status_platform;
DROP INDEX CONCURRENTLY IF EXISTS public.idx_dm_conversations_user_priority;
DROP INDEX CONCURRENTLY IF EXISTS public.idx_lead_verifications_v_score_duplicate;
