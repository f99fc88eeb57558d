-- Rows whose _dlt_load_id has no row in _dlt_loads belong to a package that never completed
-- (a crash between copying a job and completing the load, or a package dropped by hand).
-- Scanned: rows written in the 7 days before this run's first load (load ids are epoch
-- seconds, so a text range on the sr_<table>___dlt_load_id index), grouped per load id,
-- then one lookup per load id in _dlt_loads. The cost follows recent writes, not history.
-- [check] expected: 0 rows without a completed package
SELECT CAST(COALESCE(SUM(r.n), 0) AS BIGINT)
FROM (
    SELECT _dlt_load_id, COUNT(*) AS n
    FROM ${table}
    WHERE _dlt_load_id >= '${horizon_load_id}'
    GROUP BY _dlt_load_id
) AS r
WHERE NOT EXISTS (SELECT 1 FROM ${loads} AS l WHERE l.load_id = r._dlt_load_id)
-- [offenders]
SELECT t._dlt_load_id${row_columns}
FROM ${table} AS t
WHERE t._dlt_load_id >= '${horizon_load_id}'
  AND NOT EXISTS (SELECT 1 FROM ${loads} AS l WHERE l.load_id = t._dlt_load_id)
ORDER BY t._dlt_load_id
LIMIT ${max_rows}
