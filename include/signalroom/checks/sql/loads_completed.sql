-- The run's load packages are in _dlt_loads with status 0. dlt writes that row only after
-- every job of a package has loaded, so a missing row or another status means the run's
-- data is not (entirely) there. Lookups by load id: index sr__dlt_loads__load_id.
-- [check] expected: ${load_count} completed package(s), one per load id of this run, status 0
SELECT COUNT(DISTINCT load_id)
FROM ${loads}
WHERE load_id IN (${load_ids}) AND status = 0
-- [offenders]
SELECT r.load_id, l.status, l.inserted_at
FROM (VALUES ${load_id_rows}) AS r (load_id)
LEFT JOIN ${loads} AS l ON l.load_id = r.load_id
WHERE l.status IS DISTINCT FROM 0
ORDER BY r.load_id
LIMIT ${max_rows}
