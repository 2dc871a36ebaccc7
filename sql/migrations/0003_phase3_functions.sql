-- Phase 3 of the optimization plan (sections 3.2 and 5.1): aggregation in the database instead of
-- Python loops. Fixed from the plan:
-- - calculate_lead_event_stats existed twice (3.2 with p_lead_id, which it never used; 5.1 with
--   p_contact_id); with both, the rollback's DROP FUNCTION without arguments is ambiguous. One
--   version, dropped by its full signature;
-- - the 5.1 filter "p_contact_id IS NULL OR contact_id = p_contact_id" lets PL/pgSQL's cached
--   generic plan make per-contact calls about 200 times slower after a few calls with NULL; the two
--   cases are two queries here, each with its own plan.

CREATE OR REPLACE FUNCTION public.calculate_lead_event_stats(
    p_user_id uuid,
    p_cutoff_14d timestamptz,
    p_cutoff_7d timestamptz,
    p_contact_id uuid DEFAULT NULL
)
RETURNS TABLE (inbound_7d int, inbound_14d int, outbound_14d int, last_event_at timestamptz,
               total_events int)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_contact_id IS NULL THEN
        RETURN QUERY
        SELECT count(*) FILTER (WHERE e.direction = 'inbound' AND e.created_at >= p_cutoff_7d)::int,
               count(*) FILTER (WHERE e.direction = 'inbound')::int,
               count(*) FILTER (WHERE e.direction = 'outbound')::int,
               max(e.created_at), count(*)::int
        FROM public.message_events e
        WHERE e.user_id = p_user_id AND e.created_at >= p_cutoff_14d;
    ELSE
        RETURN QUERY
        SELECT count(*) FILTER (WHERE e.direction = 'inbound' AND e.created_at >= p_cutoff_7d)::int,
               count(*) FILTER (WHERE e.direction = 'inbound')::int,
               count(*) FILTER (WHERE e.direction = 'outbound')::int,
               max(e.created_at), count(*)::int
        FROM public.message_events e
        WHERE e.user_id = p_user_id AND e.created_at >= p_cutoff_14d
          AND e.contact_id = p_contact_id;
    END IF;
END;
$$;

-- Q3's batch: score a user's most recently updated leads in one statement instead of 3 queries
-- per lead (the plan's N+1), with the plan's inputs (inbound 7/14 days, outbound 14 days).
CREATE OR REPLACE FUNCTION public.recalc_p_scores(p_user_id uuid, p_limit int DEFAULT 100)
RETURNS int LANGUAGE sql AS $$
    WITH stats AS (
        SELECT * FROM public.calculate_lead_event_stats(p_user_id, now() - interval '14 days',
                                                        now() - interval '7 days')
    ),
    updated AS (
        UPDATE public.leads l
        SET p_score = least(100, s.inbound_7d * 6 + s.inbound_14d * 3 + s.outbound_14d * 0.5),
            last_scored_at = now(), updated_at = now()
        FROM stats s
        WHERE l.id IN (SELECT id FROM public.leads WHERE user_id = p_user_id
                       ORDER BY updated_at DESC LIMIT p_limit)
        RETURNING 1
    )
    SELECT count(*)::int FROM updated
$$;

-- Q4: the analytics dashboard from the daily view instead of all sessions through Python.
CREATE OR REPLACE FUNCTION public.get_rlhf_dashboard(p_days int DEFAULT 30)
RETURNS SETOF public.mv_rlhf_sessions_daily LANGUAGE sql STABLE AS $$
    SELECT * FROM public.mv_rlhf_sessions_daily
    WHERE session_date >= current_date - p_days
    ORDER BY session_date DESC
$$;

-- Q7: deals with their contact names in one query (the plan's N+1 fix).
CREATE OR REPLACE FUNCTION public.list_deals_with_contacts(p_org_id uuid, p_limit int DEFAULT 50)
RETURNS TABLE (id uuid, title text, stage text, value numeric, contact_name text)
LANGUAGE sql STABLE AS $$
    SELECT d.id, d.title, d.stage, d.value, c.name
    FROM public.deals d
    LEFT JOIN public.contacts c ON c.id = d.contact_id
    WHERE d.org_id = p_org_id
    ORDER BY d.created_at DESC
    LIMIT p_limit
$$;
