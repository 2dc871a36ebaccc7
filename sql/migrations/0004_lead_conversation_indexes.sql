-- The extra lead and conversation indexes of the scaling brief (seed 002), where they fit the
-- schema. Named as in the brief; CONCURRENTLY as everywhere, with IF NOT EXISTS so a re-run after
-- a failure continues.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_leads_user_status ON public.leads (user_id, status);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_leads_created_score
  ON public.leads (created_at DESC, p_score DESC);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_leads_email ON public.leads (email)
  WHERE email IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_messages_conversation_created
  ON public.dm_messages (conversation_id, created_at DESC);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_events_lead_timestamp
  ON public.web_tracking_events (lead_id, "timestamp" DESC);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_social_engagement_lead
  ON public.social_engagement_events (lead_id, engagement_type);
