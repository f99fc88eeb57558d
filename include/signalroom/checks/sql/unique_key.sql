-- Merge tables: no primary key appears twice among the keys this run wrote. Only the run's
-- keys are looked at (index on _dlt_load_id), each looked up in the whole table (index on
-- the key columns), so older duplicates elsewhere do not fail this run and the cost
-- follows the run's size.
-- [check] expected: 0 duplicated keys among the keys this run touched
SELECT COUNT(*)
FROM (
    SELECT ${r_key_columns}
    FROM (SELECT DISTINCT ${key_columns} FROM ${table} WHERE _dlt_load_id IN (${load_ids})) AS r
    JOIN ${table} AS t ON ${key_join}
    GROUP BY ${r_key_columns}
    HAVING COUNT(*) > 1
) AS duplicated_keys
-- [offenders]
SELECT ${r_key_columns}, COUNT(*) AS copies
FROM (SELECT DISTINCT ${key_columns} FROM ${table} WHERE _dlt_load_id IN (${load_ids})) AS r
JOIN ${table} AS t ON ${key_join}
GROUP BY ${r_key_columns}
HAVING COUNT(*) > 1
ORDER BY copies DESC
LIMIT ${max_rows}
