-- No load package of the dataset finished with a non-zero status in the last 7 days
-- (range scan on the sr__dlt_loads__inserted_at index).
-- [check] expected: 0 loads with status <> 0 since ${recent_days} days ago
SELECT COUNT(*)
FROM ${loads}
WHERE inserted_at >= now() - INTERVAL '${recent_days} days' AND status <> 0
-- [offenders]
SELECT load_id, schema_name, status, inserted_at
FROM ${loads}
WHERE inserted_at >= now() - INTERVAL '${recent_days} days' AND status <> 0
ORDER BY inserted_at DESC
LIMIT ${max_rows}
