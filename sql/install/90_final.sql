-- last: what PUBLIC may not use, then tell the launcher the extension exists
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA jq FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA jq FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA jq FROM PUBLIC;

SELECT jq._extension_created();
