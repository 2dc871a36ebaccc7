-- The page that explains each alert (a check's page id, such as 'indexes'): the Alerts page
-- names it even where no dashboard_url gives the alert a link. Alerts logged before keep ''
-- unless their link ends in the page.
ALTER TABLE dbpulse.alert_log ADD COLUMN IF NOT EXISTS page text NOT NULL DEFAULT '';
UPDATE dbpulse.alert_log SET page = regexp_replace(link, '^.*/', '')
WHERE page = '' AND link <> '';
