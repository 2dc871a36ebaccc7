DROP FUNCTION IF EXISTS public.list_deals_with_contacts(uuid, int);
DROP FUNCTION IF EXISTS public.get_rlhf_dashboard(int);
DROP FUNCTION IF EXISTS public.recalc_p_scores(uuid, int);
DROP FUNCTION IF EXISTS public.calculate_lead_event_stats(uuid, timestamptz, timestamptz, uuid);
