-- The newest business date among the rows this run wrote reaches the window end the run
-- asked for. Fails the task when the run wrote rows but none for the last day; only a
-- warning when the run wrote no rows at all (the source legitimately had none: an empty
-- prefix, no new export, a skipped day).
-- [check] expected: newest ${date_column_name} of this run's rows >= ${window_end}
SELECT CASE WHEN MAX(CAST(${date_column} AS DATE)) >= DATE '${window_end}' THEN 1 ELSE 0 END
FROM ${table}
WHERE _dlt_load_id IN (${load_ids})
-- [offenders]
SELECT MAX(CAST(${date_column} AS DATE)) AS newest_date, DATE '${window_end}' AS window_end,
       COUNT(*) AS rows_this_run
FROM ${table}
WHERE _dlt_load_id IN (${load_ids})
