"""Everflow defaults and table shape."""

from __future__ import annotations

DEFAULT_BASE_URL = "https://api.eflow.team"
REPORT_PATH = "/v1/networks/reporting/entity/table"
API_KEY_HEADER = "X-Eflow-API-Key"
TIMEZONE_ID = 80  # America/New_York
CURRENCY_ID = "USD"
GROUP_BY = ("affiliate", "advertiser", "date")

# One report request covers at most this many days; longer ranges are cut into chunks.
MAX_DAYS_PER_REQUEST = 31
# Rows per page; the next page is requested only while pages come back full.
PAGE_LIMIT = 10000


# Column types of the table; its name, key and write disposition are the registry's contract.
COLUMNS = {
    "date": {"data_type": "date", "nullable": False},
    "affiliate_id": {"data_type": "bigint", "nullable": False},
    "affiliate_label": {"data_type": "text"},
    "advertiser_id": {"data_type": "bigint", "nullable": False},
    "advertiser_label": {"data_type": "text"},
    "clicks": {"data_type": "bigint"},
    "conversions": {"data_type": "bigint"},
    "revenue": {"data_type": "decimal", "precision": 18, "scale": 4},
    "payout": {"data_type": "decimal", "precision": 18, "scale": 4},
    "profit": {"data_type": "decimal", "precision": 18, "scale": 4},
    "_client_id": {"data_type": "text", "nullable": False},
}
