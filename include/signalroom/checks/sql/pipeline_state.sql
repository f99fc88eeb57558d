-- Per pipeline this run loaded: the state a fresh worker would restore (newest row joined
-- to a status-0 load, as dlt's own restore query) exists, was written by this run when the
-- run moved a cursor, and its version is not lower than the state restorable before the run
-- nor than the state this run stored. A lower version means a worker with stale local
-- state stored older cursors over newer ones, and the next run would resume from them.
-- Lookups: index sr__dlt_pipeline_state__pipeline_name__dlt_load_id, backwards, LIMIT 1.
-- [table_expression] expected: every pipeline has a restorable state, not older than before the run
(
    WITH run_loads (pipeline_name, load_id) AS (VALUES ${run_load_rows}),
    run_pipelines (pipeline_name, first_load_id, state_row_required) AS (VALUES ${run_pipeline_rows})
    SELECT
        p.pipeline_name,
        p.state_row_required,
        (SELECT MAX(s.version)
           FROM ${state} AS s JOIN run_loads AS r ON r.load_id = s._dlt_load_id
          WHERE s.pipeline_name = p.pipeline_name AND r.pipeline_name = p.pipeline_name
        ) AS run_version,
        (SELECT s.version
           FROM ${state} AS s JOIN ${loads} AS l ON l.load_id = s._dlt_load_id
          WHERE s.pipeline_name = p.pipeline_name AND l.status = 0
            AND s._dlt_load_id < p.first_load_id
          ORDER BY s._dlt_load_id DESC LIMIT 1
        ) AS version_before_run,
        (SELECT s.version
           FROM ${state} AS s JOIN ${loads} AS l ON l.load_id = s._dlt_load_id
          WHERE s.pipeline_name = p.pipeline_name AND l.status = 0
          ORDER BY s._dlt_load_id DESC LIMIT 1
        ) AS restorable_version
    FROM run_pipelines AS p
) AS state_by_pipeline
-- [state_row_present]
restorable_version IS NOT NULL AND (state_row_required = 0 OR run_version IS NOT NULL)
-- [state_version_not_lower]
(version_before_run IS NULL OR restorable_version >= version_before_run)
AND (run_version IS NULL OR restorable_version >= run_version)
-- [offenders]
SELECT *
FROM ${table_expression}
WHERE NOT COALESCE((${state_row_present}), FALSE)
   OR NOT COALESCE((${state_version_not_lower}), FALSE)
ORDER BY pipeline_name
LIMIT ${max_rows}
