"""RedTrack defaults and table shape."""

from __future__ import annotations

DEFAULT_BASE_URL = "https://api.redtrack.io"
REPORT_PATH = "/report"
API_KEY_HEADER = "X-API-KEY"
TIMEZONE = "America/New_York"

# Seconds between two requests (every attempt, retries included): the API allows about one
# per second; the small margin keeps clock jitter from tipping it over.
REQUEST_INTERVAL = 1.05


# Field fallbacks, first match wins. Conversions come from `conversions` only: never from
# `total_conversions`, and a real 0 stays 0.
SOURCE_ID_FIELDS = ("source_id", "sourceId", "traffic_source_id", "trafficSourceId")
SOURCE_NAME_FIELDS = ("source", "traffic_source", "trafficSource", "source_name", "sourceName")
SOURCE_ALIAS_FIELDS = ("source_alias", "sourceAlias", "traffic_source_alias")
CLICKS_FIELDS = ("clicks", "total_clicks")
CONVERSIONS_FIELDS = ("conversions",)
COST_FIELDS = ("cost", "spend", "total_cost")
# An object response holds its rows under the first of these keys.
ENVELOPE_KEYS = ("rows", "items", "data", "results")

# Column types of the table; its name, key and write disposition are the registry's contract.
COLUMNS = {
    "date": {"data_type": "date", "nullable": False},
    "source_id": {"data_type": "text", "nullable": False},
    "source_name": {"data_type": "text"},
    "source_alias": {"data_type": "text"},
    "clicks": {"data_type": "bigint"},
    "conversions": {"data_type": "bigint"},
    "cost": {"data_type": "decimal", "precision": 18, "scale": 4},
    "_client_id": {"data_type": "text", "nullable": False},
}
