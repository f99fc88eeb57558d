-- The stored state of every pipeline this run loaded stays under the configured bound
-- (bytes of the base64 zlib text in _dlt_pipeline_state.state; SIGNALROOM_STATE_MAX_BYTES).
-- Unbounded state (per-row dedup hashes, ever-growing file lists) is a known dlt failure
-- mode: every run reads and rewrites it. Newest row per pipeline via the state index.
-- [check] expected: largest state <= ${state_max_bytes} bytes
SELECT COALESCE(MAX(state_bytes), 0)
FROM (
    SELECT (SELECT LENGTH(s.state)
              FROM ${state} AS s JOIN ${loads} AS l ON l.load_id = s._dlt_load_id
             WHERE s.pipeline_name = p.pipeline_name AND l.status = 0
             ORDER BY s._dlt_load_id DESC LIMIT 1) AS state_bytes
    FROM (VALUES ${pipeline_rows}) AS p (pipeline_name)
) AS sizes
-- [offenders]
SELECT pipeline_name, state_bytes
FROM (
    SELECT p.pipeline_name,
           (SELECT LENGTH(s.state)
              FROM ${state} AS s JOIN ${loads} AS l ON l.load_id = s._dlt_load_id
             WHERE s.pipeline_name = p.pipeline_name AND l.status = 0
             ORDER BY s._dlt_load_id DESC LIMIT 1) AS state_bytes
    FROM (VALUES ${pipeline_rows}) AS p (pipeline_name)
) AS sizes
WHERE state_bytes > ${state_max_bytes}
ORDER BY state_bytes DESC
LIMIT ${max_rows}
