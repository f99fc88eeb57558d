"""Synthetic CRM order exports: the real files' shape (129-column header, CRLF, text values),
none of their data. Used by the demo, the tests and the benchmarks.

Values look like the real exports: `MM/DD/YYYY` dates, `hh:mm AM` times, `YES`/`NO` flags,
money as plain numbers, `N/A` and empty cells, quoted commas, quotes and line breaks in
free text. Every name, address and e-mail is made up (`example.com`, 555-01xx numbers).
Rows are drawn from a seeded pool of distinct rows with a unique `orders_id` each, so a
million-row file is written in seconds.
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
from datetime import date, timedelta
from pathlib import Path
from typing import Callable, Sequence

HEADER_FILE = Path(__file__).with_name("orders_export_header.csv")
DEFAULT_PREFIXES = ("orders-create", "orders-update", "prospects-create")
POOL_SIZE = 1500  # distinct row bodies per file


def header() -> list[str]:
    """The 129 column names of the order exports (a copy of ../shared's header file)."""
    with HEADER_FILE.open(newline="", encoding="utf-8") as f:
        return next(csv.reader(f))


_FIRST = ["Avery", "Jordan", "Casey", "Riley", "Morgan", "Quinn", "Harper", "Rowan", "Sage", "Emery",
          "Jamie", "Parker", "Reese", "Skyler", "Dakota", "Finley", "Hayden", "Kendall", "Logan", "Peyton"]
_LAST = ["Sample", "Tester", "Example", "Demo", "Placeholder", "Synth", "Mock", "Fixture", "Dummy",
         "O'Fake", "Nobody", "Anyone", "Whoever", "Someone", "Fauxman"]
_STREETS = ["Maple", "Oak", "Cedar", "Elm", "Pine", "Birch", "Willow", "Aspen", "Spruce", "Hickory"]
_CITIES = [("Springfield", "IL", "62701"), ("Riverton", "WY", "82501"), ("Fairview", "TN", "37062"),
           ("Greenville", "SC", "29601"), ("Madison", "WI", "53703"), ("Salem", "OR", "97301")]
_PRODUCTS = [("Vitality Blend 30ct", "SKU-VB30", "Supplements"), ("Glow Serum, 1oz", "SKU-GS01", "Skincare"),
             ("Focus Caps \"Max\"", "SKU-FC60", "Supplements"), ("Trial Kit", "SKU-TK01", "Trials")]
_STATUS = ["Approved", "Approved", "Approved", "Declined", "Pending", "Shipped", "Void/Refunded"]
_DECLINES = ["Insufficient Funds", "Do Not Honor", "Expired Card", "Invalid CVV"]
_NOTES = ["", "", "", "", "", "", "Customer called, asked about shipping",
          "Refund requested; \"damaged\" box", "Line one\r\nline two of a note", "N/A"]

Gen = Callable[[random.Random, date], str]


def _us(day: date) -> str:
    return day.strftime("%m/%d/%Y")


def _time(rng: random.Random) -> str:
    return f"{rng.randint(1, 12):02d}:{rng.randint(0, 59):02d} {rng.choice(['AM', 'PM'])}"


def _money(rng: random.Random, low: float = 1, high: float = 200) -> str:
    return f"{rng.uniform(low, high):.2f}"


def _yes_no(p_yes: float) -> Gen:
    return lambda rng, day: "YES" if rng.random() < p_yes else "NO"


def _sometimes_date(p: float) -> Gen:
    return lambda rng, day: _us(day - timedelta(days=rng.randint(0, 40))) if rng.random() < p else ""


def _int(low: int, high: int, p_empty: float = 0.0) -> Gen:
    return lambda rng, day: "" if rng.random() < p_empty else str(rng.randint(low, high))


_SPECIFIC: dict[str, Gen] = {
    "created_by": lambda r, d: r.choice(["system", "api", "", "admin"]),
    "billing_suburb": lambda r, d: r.choice(["", "", "Apt 4", "Suite 200"]),
    "delivery_suburb": lambda r, d: r.choice(["", "", "Apt 4", "Suite 200"]),
    "billing_country": lambda r, d: "US",
    "delivery_country": lambda r, d: "US",
    "shipping_method": lambda r, d: r.choice(["Standard", "Express", "N/A"]),
    "shipping_desc": lambda r, d: r.choice(["USPS First Class", "UPS Ground, signature", ""]),
    "shipping_group": lambda r, d: r.choice(["Domestic", ""]),
    "shipping_group_code": lambda r, d: r.choice(["DOM", ""]),
    "shipping_weight": lambda r, d: f"{r.uniform(0.1, 3):.1f}",
    "tax_pct": lambda r, d: r.choice(["0", "6.25", "8.875"]),
    "order_date": lambda r, d: _us(d),
    "order_time": lambda r, d: _time(r),
    "tracking_num": lambda r, d: r.choice(["N/A", "", f"9400{r.randint(10**15, 10**16 - 1)}"]),
    "cc_num_masked": lambda r, d: f"XXXXXXXXXXXX{r.randint(1000, 9999)}",
    "cc_expires": lambda r, d: f"{r.randint(1, 12):02d}{r.randint(26, 31)}",
    "gateway_alias": lambda r, d: r.choice(["NMI Main", "Stripe 2", "Paysafe-B"]),
    "processing_percent": lambda r, d: r.choice(["4.5", "3.9", "0"]),
    "reserve_percent": lambda r, d: r.choice(["0", "5"]),
    "descriptor": lambda r, d: "SYNTH*SUPPLY 555-0100",
    "customer_service_number": lambda r, d: "555-0100",
    "ip_address": lambda r, d: f"192.0.2.{r.randint(1, 254)}",
    "order_status": lambda r, d: r.choice(_STATUS),
    "decline_reason": lambda r, d: r.choice(["N/A", "N/A", "", r.choice(_DECLINES)]),
    "cascade_reason": lambda r, d: r.choice(["N/A", ""]),
    "installments": lambda r, d: "1",
    "transaction_id": lambda r, d: f"{r.getrandbits(64):016x}",
    "auth_id": lambda r, d: r.choice(["", str(r.randint(100000, 999999))]),
    "retry_attempt": lambda r, d: r.choice(["0", "0", "1"]),
    "products_quantity": lambda r, d: r.choice(["1", "1", "2", "3"]),
    "product_attributes": lambda r, d: r.choice(["N/A", "Size: M, Color: Blue", ""]),
    "notes": lambda r, d: r.choice(_NOTES),
    "Click ID": lambda r, d: f"{r.getrandbits(96):024x}",
    "Retries Left": lambda r, d: r.choice(["0", "1", "2"]),
    "Hold Type ID": lambda r, d: r.choice(["", "", "3"]),
    "opt": lambda r, d: r.choice(["", "1"]),
}


def _by_shape(name: str) -> Gen:
    """A generator for a column from its name: flags, dates, money, ids, else mostly empty."""
    if name in _SPECIFIC:
        return _SPECIFIC[name]
    lower = name.lower()
    if lower.endswith("_flag") or lower in ("delivery_confirm", "signature_confirm", "is_recurring",
                                            "retrying", "order_confirmed", "is_test_cc", "cascade_flag"):
        return _yes_no(0.9 if lower in ("shippable_flag", "order_confirmed") else 0.1)
    if "date" in lower:
        return _sometimes_date(0.6 if lower in ("customer_creation_date", "acquisition_date",
                                                "recurring_date", "order_confirmed_date") else 0.05)
    if lower.endswith(("_amount", "_price", "_fee", "_value", "_discount")):
        return lambda rng, day: _money(rng, 0, 150)
    if lower.endswith("_user"):
        return lambda rng, day: rng.choice(["", "", "", "agent7"])
    if lower.endswith(("_id", "id")) or lower.endswith("_number") or lower == "rebill_depth":
        return _int(1, 99999, p_empty=0.2)
    return lambda rng, day: ""


def _pool(names: Sequence[str], day: date, rng: random.Random, size: int) -> list[str]:
    """`size` distinct CSV bodies (every column but the first), CRLF-terminated."""
    gens = [_by_shape(n) for n in names[1:]]
    index = {n: i - 1 for i, n in enumerate(names)}
    # affiliate sub-ids: numbers in some files, text in others (a load must not care)
    numeric_subids = rng.random() < 0.5
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    rows: list[str] = []
    for _ in range(size):
        row = [g(rng, day) for g in gens]
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        city, state, postcode = rng.choice(_CITIES)
        product, sku, category = rng.choice(_PRODUCTS)
        people = {
            "fname": first, "lname": last,
            "street_address": f"{rng.randint(1, 9999)} {rng.choice(_STREETS)} St",
            "city": city, "state": state, "postcode": postcode,
            "phone": f"555-01{rng.randint(0, 99):02d}",
            "email": f"{first}.{last}{rng.randint(1, 999)}@example.com".lower().replace("'", ""),
        }
        for who in ("billing", "delivery"):
            for key, value in people.items():
                if f"{who}_{key}" in index:
                    row[index[f"{who}_{key}"]] = value
        for key, value in (("product_name", product), ("product_sku", sku), ("product_category", category),
                           ("products_description", f"{product}, {category.lower()}")):
            if key in index:
                row[index[key]] = value
        for key in ("c1", "c2", "c3", "sid", "afid", "affid"):
            if key in index:
                row[index[key]] = (str(rng.randint(1, 500)) if numeric_subids
                                   else rng.choice(["fb", "ig_story", "N/A", ""]))
        writer.writerow(row)
        rows.append(out.getvalue())
        out.seek(0)
        out.truncate()
    return rows


def write_export(path: Path, day: date, rows: int, *, seed: int = 0) -> Path:
    """One synthetic export CSV for `day` with `rows` data rows (CRLF, header first)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = header()
    rng = random.Random(f"{seed}:{day.isoformat()}:{path.name}")
    pool = _pool(names, day, rng, min(max(rows, 1), POOL_SIZE))
    base = (day - date(2020, 1, 1)).days * 10_000_000
    with path.open("w", encoding="utf-8", newline="") as f:
        head = io.StringIO()
        csv.writer(head, lineterminator="\r\n").writerow(names)
        f.write(head.getvalue())
        chunk: list[str] = []
        for i in range(rows):
            chunk.append(f"{base + i},{pool[(i * 7919) % len(pool)]}")
            if len(chunk) == 10_000:
                f.write("".join(chunk))
                chunk.clear()
        f.write("".join(chunk))
    return path


def export_name(day: date, prefix: str, seed: int = 0) -> str:
    """`report_2025-12-18T0301_<suffix>.csv` like the CRM's files."""
    suffix = hashlib.sha1(f"{seed}:{prefix}:{day}".encode()).hexdigest()[:8]
    return f"report_{day.isoformat()}T0301_{suffix}.csv"


def write_exports(
    root: Path,
    days: list[date],
    rows_per_file: int,
    prefixes: Sequence[str] = DEFAULT_PREFIXES,
    *,
    seed: int = 0,
    empty_prefixes: Sequence[str] = (),
) -> list[Path]:
    """One file per prefix per day under `root/<prefix>/`; every other day's file one folder
    deeper (`<prefix>/<year>/`), as the bucket has both. `empty_prefixes` get a folder only."""
    root = Path(root)
    paths = []
    for prefix in prefixes:
        (root / prefix).mkdir(parents=True, exist_ok=True)
        if prefix in empty_prefixes:
            continue
        for n, day in enumerate(sorted(days)):
            folder = root / prefix / (str(day.year) if n % 2 else "")
            paths.append(write_export(folder / export_name(day, prefix, seed), day, rows_per_file, seed=seed))
    return paths
