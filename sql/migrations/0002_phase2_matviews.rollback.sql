DROP FUNCTION IF EXISTS public.refresh_analytics_mvs();
DROP MATERIALIZED VIEW IF EXISTS public.mv_hot_leads;
DROP MATERIALIZED VIEW IF EXISTS public.mv_template_performance;
DROP MATERIALIZED VIEW IF EXISTS public.mv_rlhf_sessions_daily;
