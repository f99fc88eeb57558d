"""The daily_performance model's SQL: one text for Postgres and DuckDB (both read it alike).

The business rules (docs/REPORTING.md):

- one row per Everflow (date, advertiser_id, trimmed affiliate label): conversions, payout and
  revenue summed over the affiliate ids sharing that label (the mapping's affiliate id is a
  placeholder; the label is the key);
- `redtrack_cost` / `redtrack_clicks`: RedTrack spend of that date whose source maps (seed) to
  that trimmed label and advertiser, summed; 0 when none. A mapping row without an advertiser
  (`n/a`) attributes its spend to no row; a source with no mapping row neither (the
  reconciliation check measures that share);
- `is_internal`: the trimmed label is one of the registry's internal labels;
- `cost`: RedTrack cost when internal, Everflow payout otherwise;
- `cpa`: round(cost / conversions, 2), 0 without conversions;
- `is_provisional`: the date is today (ET, intraday numbers) or inside the inputs' look-back
  of the last finished day: the next daily runs re-read and may restate it.
"""

from __future__ import annotations

import re

from signalroom.registry import ModelSpec, get_spec
from signalroom.reporting.seed import COLUMNS, INTEGER_COLUMNS

_IDENTIFIER = re.compile(r"\A[a-z_][a-z0-9_]*\Z")
MONEY = "NUMERIC(38, 4)"
RATE = "NUMERIC(38, 2)"


def quote(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not a plain lower-case SQL identifier (registry names only)")
    return f'"{name}"'


def qualified(schema: str, table: str) -> str:
    return f"{quote(schema)}.{quote(table)}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def input_table(model: ModelSpec, source: str) -> str:
    """The loaded table of one of the model's inputs, schema-qualified (registry names)."""
    for name, resource in model.inputs:
        if name == source:
            spec = get_spec(name)
            return qualified(spec.dataset_name, spec.resource(resource).table)
    raise ValueError(f"model {model.name!r} has no input from source {source!r}")


def view_name(model: ModelSpec) -> str:
    return qualified(model.schema, model.name)


def mapping_name(model: ModelSpec) -> str:
    return qualified(model.schema, model.mapping_table)


def mapping_ddl(model: ModelSpec) -> list[str]:
    columns = ", ".join(
        f"{quote(c)} {'BIGINT' if c in INTEGER_COLUMNS else 'TEXT'}" for c in COLUMNS.values()
    )
    return [
        f"CREATE SCHEMA IF NOT EXISTS {quote(model.schema)}",
        f"CREATE TABLE IF NOT EXISTS {mapping_name(model)} ({columns})",
    ]


def mapping_replace(model: ModelSpec, placeholder: str) -> tuple[str, str]:
    """(delete every row, insert one row) — run in one transaction with the insert repeated."""
    names = ", ".join(quote(c) for c in COLUMNS.values())
    values = ", ".join([placeholder] * len(COLUMNS))
    return f"DELETE FROM {mapping_name(model)}", f"INSERT INTO {mapping_name(model)} ({names}) VALUES ({values})"


def provisional_since_sql(model: ModelSpec) -> str:
    """The first ET date the next daily run still re-reads: today (ET, the database's clock)
    minus the longest look-back of the inputs. Dates from it on are provisional."""
    specs = [get_spec(source) for source, _ in model.inputs]
    lookback = max(spec.lookback_days for spec in specs)
    return f"CAST(timezone({_literal(specs[0].timezone)}, now()) AS DATE) - {int(lookback)}"


def view_ddl(model: ModelSpec) -> list[str]:
    """Drop and create the view (CREATE OR REPLACE cannot change a column's type in Postgres)."""
    internal = ", ".join(_literal(label.strip()) for label in model.internal_labels)
    everflow, redtrack = input_table(model, "everflow"), input_table(model, "redtrack")
    select = f"""
WITH ef AS (
    SELECT date, advertiser_id, TRIM(affiliate_label) AS affiliate_label,
           MAX(advertiser_label) AS advertiser_label,
           SUM(COALESCE(conversions, 0)) AS conversions,
           CAST(SUM(COALESCE(payout, 0)) AS {MONEY}) AS everflow_payout,
           CAST(SUM(COALESCE(revenue, 0)) AS {MONEY}) AS everflow_revenue
    FROM {everflow}
    GROUP BY date, advertiser_id, TRIM(affiliate_label)
),
rt AS (
    SELECT s.date, m.everflow_advertiser_id AS advertiser_id,
           TRIM(m.everflow_affiliate_label) AS affiliate_label,
           CAST(SUM(COALESCE(s.cost, 0)) AS {MONEY}) AS redtrack_cost,
           SUM(COALESCE(s.clicks, 0)) AS redtrack_clicks
    FROM {redtrack} AS s
    JOIN {mapping_name(model)} AS m ON m.redtrack_source_id = s.source_id
    WHERE m.everflow_advertiser_id IS NOT NULL
    GROUP BY s.date, m.everflow_advertiser_id, TRIM(m.everflow_affiliate_label)
),
joined AS (
    SELECT ef.date, ef.advertiser_id, ef.advertiser_label, ef.affiliate_label, ef.conversions,
           ef.everflow_payout, ef.everflow_revenue,
           COALESCE(rt.redtrack_cost, 0) AS redtrack_cost,
           COALESCE(rt.redtrack_clicks, 0) AS redtrack_clicks,
           ef.affiliate_label IN ({internal}) AS is_internal
    FROM ef
    LEFT JOIN rt ON rt.date = ef.date AND rt.advertiser_id = ef.advertiser_id
                AND rt.affiliate_label = ef.affiliate_label
),
costed AS (
    SELECT joined.*,
           CAST(CASE WHEN is_internal THEN redtrack_cost ELSE everflow_payout END AS {MONEY}) AS cost
    FROM joined
)
SELECT date, advertiser_id, advertiser_label, affiliate_label, conversions, everflow_payout,
       everflow_revenue, redtrack_cost, redtrack_clicks, is_internal, cost,
       {cpa_expression()} AS cpa,
       date >= {provisional_since_sql(model)} AS is_provisional
FROM costed"""
    return [
        f"CREATE SCHEMA IF NOT EXISTS {quote(model.schema)}",
        f"DROP VIEW IF EXISTS {view_name(model)}",
        f"CREATE VIEW {view_name(model)} AS{select}",
    ]


def cpa_expression(cost: str = "cost", conversions: str = "conversions") -> str:
    """The CPA rule, in exact decimals (DuckDB would divide decimals as doubles)."""
    return (
        f"CAST(CASE WHEN {conversions} = 0 THEN 0 "
        f"ELSE ROUND(CAST({cost} AS {MONEY}) / CAST({conversions} AS {MONEY}), 2) END AS {RATE})"
    )


# ---------------------------------------------------------------------------------- checks


def duplicate_rows_sql(model: ModelSpec) -> str:
    """How many (date, advertiser, affiliate label) appear more than once (must be 0)."""
    return (
        "SELECT COUNT(*) FROM (SELECT date, advertiser_id, affiliate_label "
        f"FROM {view_name(model)} GROUP BY date, advertiser_id, affiliate_label "
        "HAVING COUNT(*) > 1) AS duplicated"
    )


def row_checks(model: ModelSpec) -> dict[str, dict[str, str]]:
    """SQLTableCheckOperator checks: a statement every row of the view must satisfy."""
    return {
        "cost_not_negative": {"check_statement": "cost >= 0"},
        "cpa_is_rounded_cost_per_conversion": {"check_statement": f"cpa = {cpa_expression()}"},
    }


def unmapped_spend_by_day_sql(model: ModelSpec) -> str:
    """Per day of the newest `reconciliation_days` of RedTrack data: total spend, spend whose
    source has no mapping row, and that share (0 for a day without spend)."""
    redtrack = input_table(model, "redtrack")
    return f"""
SELECT s.date, CAST(SUM(COALESCE(s.cost, 0)) AS {MONEY}) AS spend,
       CAST(SUM(CASE WHEN m.redtrack_source_id IS NULL THEN COALESCE(s.cost, 0) ELSE 0 END) AS {MONEY})
           AS unmapped_spend,
       CAST(CASE WHEN SUM(COALESCE(s.cost, 0)) = 0 THEN 0
            ELSE SUM(CASE WHEN m.redtrack_source_id IS NULL THEN COALESCE(s.cost, 0) ELSE 0 END)
                 / SUM(COALESCE(s.cost, 0)) END AS NUMERIC(9, 4)) AS unmapped_share
FROM {redtrack} AS s
LEFT JOIN (SELECT DISTINCT redtrack_source_id FROM {mapping_name(model)}
           WHERE redtrack_source_id IS NOT NULL) AS m ON m.redtrack_source_id = s.source_id
WHERE s.date > (SELECT MAX(date) FROM {redtrack}) - INTERVAL '{int(model.reconciliation_days)} days'
GROUP BY s.date
ORDER BY s.date""".strip()


def max_unmapped_share_sql(model: ModelSpec) -> str:
    return f"SELECT COALESCE(MAX(unmapped_share), 0) FROM ({unmapped_spend_by_day_sql(model)}) AS days"


def summary_sql(model: ModelSpec) -> str:
    """Rows, first and last date of the view (the published event's extra, the demo summary)."""
    return f"SELECT COUNT(*), MIN(date), MAX(date) FROM {view_name(model)}"
