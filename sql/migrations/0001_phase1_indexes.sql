-- Phase 1 of the optimization plan (strategy document, sections 3.1 and 5.1): its 12 numbered
-- composite, partial and covering indexes (13 statements: its INDEX 8 is two indexes). Each CREATE INDEX CONCURRENTLY runs alone, outside a transaction
-- (the plan's file, run as one transaction, fails: "CREATE INDEX CONCURRENTLY cannot run inside a
-- transaction block"); DB Pulse's runner does that, checks each index is valid afterwards, and
-- resumes after the last completed statement if one fails.

-- 1: Q1, message events list (user, status, newest first)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_message_events_user_status_created
  ON public.message_events (user_id, autopilot_status, created_at DESC);

-- 2: Q2, pending events per channel (partial: only pending rows)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_message_events_user_channel_status
  ON public.message_events (user_id, channel, autopilot_status, created_at ASC)
  WHERE autopilot_status = 'pending';

-- 3: Zero-input CRM, events per contact
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_message_events_user_contact_created
  ON public.message_events (user_id, contact_id, created_at DESC)
  WHERE contact_id IS NOT NULL;

-- 4: P-score time ranges. Changed from the plan: INCLUDE (channel) only. The plan also included
-- normalized_text, which no query of the plan reads, and which makes inserts of messages with about
-- 2.7 kB of incompressible text fail (a B-tree entry must fit in a third of a page).
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_message_events_user_created_direction
  ON public.message_events (user_id, created_at DESC, direction)
  INCLUDE (channel);

-- 5: Q9, hot leads. Changed from the plan: p_score DESC (NULLS FIRST, the default for DESC) to
-- match the hot-leads query's ORDER BY p_score DESC; with the plan's NULLS LAST the planner
-- cannot use the index for that ordering.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_leads_p_score_scored_at
  ON public.leads (p_score DESC, last_scored_at DESC)
  WHERE p_score IS NOT NULL;

-- 6: pending follow-ups
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_leads_next_followup
  ON public.leads (next_follow_up)
  WHERE next_follow_up IS NOT NULL;

-- 7: dashboards, leads by status and age
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_leads_status_created
  ON public.leads (status, created_at DESC);

-- 8 (two indexes): Q8, CRM notes per contact and per lead
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_crm_notes_user_contact_created
  ON public.crm_notes (user_id, contact_id, created_at DESC)
  WHERE contact_id IS NOT NULL;

CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_crm_notes_user_lead_created
  ON public.crm_notes (user_id, lead_id, created_at DESC)
  WHERE lead_id IS NOT NULL;

-- 9: Q4, analytics over sessions (covering)
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_rlhf_sessions_created_outcome
  ON public.rlhf_feedback_sessions (created_at DESC, outcome)
  INCLUDE (composite_reward, user_id);

-- 10 and 11: Q5, unified inbox
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_dm_conversations_user_status_platform
  ON public.dm_conversations (user_id, status, platform, last_message_at DESC);

CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_dm_conversations_user_priority
  ON public.dm_conversations (user_id, priority_score DESC, last_message_at DESC);

-- 12: Q10, lead verifications by score
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_lead_verifications_v_score_duplicate
  ON public.lead_verifications (v_score DESC, is_duplicate)
  WHERE v_score IS NOT NULL;
