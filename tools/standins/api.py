"""A loopback HTTP stand-in for the Everflow and RedTrack report APIs.

Speaks the contracts in docs/SOURCES.md (auth, date filtering, Everflow page/limit,
RedTrack one-day-per-request with a ~1 request/s limit answering 429, `POST /report` 404)
and serves deterministic synthetic data (seeded per day), with controls for tests: restate a
day's metrics, inject 5xx bursts, force 429s. Every request is recorded (without key values)
so tests and benchmarks can assert on what the sources actually sent.

    python -m tools.standins.api --port 8765
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from datetime import time as dtime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

EVERFLOW_PATH = "/v1/networks/reporting/entity/table"
REDTRACK_PATH = "/report"
ET = ZoneInfo("America/New_York")

# Labels the reporting model treats as the company's own paid media (one with a trailing
# space, as seen in real data).
INTERNAL_AFFILIATES = ("G2 - Meta", "G2 - Google", "SB - Meta", "SB - Google ")


@dataclass
class RecordedRequest:
    api: str  # "everflow" | "redtrack" | "unknown"
    method: str
    path: str
    query: dict[str, str]  # api_key replaced by "<ok>" / "<wrong>"
    body: Any
    headers: dict[str, str]  # key headers replaced by "<ok>" / "<wrong>"
    time: float  # time.monotonic() on arrival
    status: int = 0

    @property
    def day_range(self) -> tuple[date, date] | None:
        """The (from, to) days this request asked for, if it is a report request."""
        try:
            if self.api == "everflow":
                return date.fromisoformat(self.body["from"]), date.fromisoformat(self.body["to"])
            if self.api == "redtrack":
                return date.fromisoformat(self.query["date_from"]), date.fromisoformat(self.query["date_to"])
        except (KeyError, TypeError, ValueError):
            return None
        return None


@dataclass
class _Fault:
    status: int
    remaining: int
    api: str | None  # None: any API


def _money(rng: random.Random, low: float, high: float) -> Decimal:
    return Decimal(str(round(rng.uniform(low, high), 2)))


def _hex24(seed: int, n: int) -> str:
    return hashlib.sha1(f"rt-source:{seed}:{n}".encode()).hexdigest()[:24]


@dataclass
class _Catalog:
    """The fixed cast: advertisers, affiliates, traffic sources (derived from the seed)."""

    seed: int
    advertisers: list[tuple[int, str]] = field(default_factory=list)
    affiliates: list[tuple[int, str]] = field(default_factory=list)
    sources: list[tuple[str, str, str]] = field(default_factory=list)  # id, name, alias

    def __post_init__(self) -> None:
        rng = random.Random(f"catalog:{self.seed}")
        brands = ["Acme Health", "Brightline", "Cobalt Insure", "Delta Finance", "Evergreen Solar",
                  "Fjord Travel", "Granite Home", "Harbor Legal", "Ionic Energy"]
        self.advertisers = [(11 + 7 * i, name) for i, name in enumerate(brands)]
        names = list(INTERNAL_AFFILIATES) + [f"Partner {rng.choice('ABCDEFGHJK')}{i:02d}" for i in range(36)]
        self.affiliates = [(1000 + 13 * i, name) for i, name in enumerate(names)]
        networks = ["Facebook", "Google Ads", "TikTok", "Taboola", "Outbrain"]
        brands_short = ["G2", "SB", "ZX", "QM", "LT"]
        self.sources = [
            (_hex24(self.seed, i), f"{networks[i % 5]} - {brands_short[i // 5]}", f"{networks[i % 5].lower()[:3]}{i:02d}")
            for i in range(25)
        ]


class ApiStandin:
    """Threaded HTTP server on 127.0.0.1 serving both APIs at one base URL (`url`)."""

    def __init__(self, everflow_key: str = "ef-test-key", redtrack_key: str = "rt-test-key", *,
                 seed: int = 0, port: int = 0) -> None:
        self.everflow_key = everflow_key
        self.redtrack_key = redtrack_key
        self.seed = seed
        self.port = port
        self.catalog = _Catalog(seed)
        self.requests: list[RecordedRequest] = []
        # RedTrack rate limit: a request closer than this to the previous one answers 429.
        self.rate_limit_interval = 0.95
        self.retry_after = "1"  # Retry-After header sent with 429 ("" to omit)
        # How the Everflow date column's Unix seconds are made: "utc" (midnight UTC of the
        # business day), "et" (midnight America/New_York) or "mixed" (alternating per row).
        self.everflow_epoch = "utc"
        self._versions: dict[tuple[str, date], int] = {}
        self._faults: list[_Fault] = []
        self._last_redtrack: float | None = None
        self._lock = threading.Lock()
        self._hold: list | None = None  # [api, requests still served before holding]
        self._gate = threading.Event()
        self.holding = threading.Event()  # set while a request waits at the hold
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("ApiStandin not started: call start() first")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> ApiStandin:
        handler = type("_BoundHandler", (_Handler,), {"standin": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="api-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ApiStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- controls for tests ----------------------------------------------------------------

    def restate(self, api: str, day: date) -> None:
        """Change every metric of `api`'s rows for `day` (keys stay): a late restatement."""
        with self._lock:
            self._versions[(api, day)] = self._versions.get((api, day), 0) + 1

    def fail_next(self, count: int, status: int = 503, api: str | None = None) -> None:
        """The next `count` requests (to `api`, or any) answer `status` (a 5xx burst, 401, ...)."""
        with self._lock:
            self._faults.append(_Fault(status, count, api))

    def throttle_next(self, count: int, api: str | None = None) -> None:
        """The next `count` requests answer 429 Too Many Requests."""
        self.fail_next(count, 429, api)

    def hold_after(self, api: str, served: int) -> None:
        """Serve `served` more requests to `api`, then hold every further one (the client waits,
        mid-extract) until `release()`: lets a test kill a worker at a known point of a load."""
        with self._lock:
            self._hold = [api, served]
            self._gate.clear()
            self.holding.clear()

    def release(self) -> None:
        with self._lock:
            self._hold = None
            self._gate.set()

    def _wait_at_hold(self, api: str) -> None:
        with self._lock:
            hold = self._hold
            if hold is None or hold[0] != api:
                return
            if hold[1] > 0:
                hold[1] -= 1
                return
        self.holding.set()
        self._gate.wait(timeout=600)

    def reset_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def report_requests(self, api: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.api == api]

    # -- synthetic data (the truth tests compare against) ----------------------------------

    def _version(self, api: str, day: date) -> int:
        return self._versions.get((api, day), 0)

    def everflow_rows(self, day: date) -> list[dict[str, Any]]:
        """Canonical rows for `day` in table terms; a missing key id is None (never loaded)."""
        rng = random.Random(f"ef:{self.seed}:{day.isoformat()}")
        metrics = random.Random(f"ef:{self.seed}:{day.isoformat()}:v{self._version('everflow', day)}")
        pairs = [(a, b) for a in self.catalog.affiliates for b in self.catalog.advertisers]
        chosen = rng.sample(pairs, rng.randint(22, 28))
        rows = []
        for (aff_id, aff_label), (adv_id, adv_label) in chosen:
            clicks = metrics.randint(0, 2000)
            cv = metrics.randint(0, clicks // 25) if metrics.random() > 0.1 else 0
            payout = (Decimal(cv) * _money(metrics, 5, 60)).quantize(Decimal("0.01"))
            revenue = (payout * Decimal(str(round(metrics.uniform(1.05, 1.6), 2)))).quantize(Decimal("0.01"))
            rows.append({
                "date": day, "affiliate_id": aff_id, "affiliate_label": aff_label,
                "advertiser_id": adv_id, "advertiser_label": adv_label, "clicks": clicks,
                "conversions": cv, "revenue": revenue, "payout": payout, "profit": revenue - payout,
            })
        # about a third of the days carry one row whose affiliate or advertiser id is missing
        if rng.random() < 0.35:
            broken = dict(rows[0], clicks=7, conversions=1)
            broken["affiliate_id" if rng.random() < 0.5 else "advertiser_id"] = None
            rows.append(broken)
        return rows

    def redtrack_rows(self, day: date) -> list[dict[str, Any]]:
        """Canonical rows for `day` in table terms; an empty source id is "" (never loaded).

        `conversions` is None for a row that only reports `total_conversions`."""
        rng = random.Random(f"rt:{self.seed}:{day.isoformat()}")
        metrics = random.Random(f"rt:{self.seed}:{day.isoformat()}:v{self._version('redtrack', day)}")
        chosen = rng.sample(self.catalog.sources, rng.randint(13, 17))
        rows = []
        for source_id, name, alias in chosen:
            clicks = metrics.randint(0, 5000)
            conversions = 0 if metrics.random() < 0.25 else metrics.randint(1, max(1, clicks // 40))
            rows.append({
                "date": day, "source_id": source_id, "source_name": name,
                "source_alias": alias if metrics.random() > 0.2 else None,
                "clicks": clicks, "conversions": conversions, "cost": _money(metrics, 0, 900),
            })
        if rng.random() < 0.2:
            rows[-1]["conversions"] = None  # reported only as total_conversions
        if rng.random() < 0.35:
            rows.append({"date": day, "source_id": "", "source_name": "(unknown)", "source_alias": None,
                         "clicks": 3, "conversions": 0, "cost": Decimal("0.50")})
        return rows

    # -- wire format ----------------------------------------------------------------------

    def _epoch(self, day: date, index: int) -> str:
        style = self.everflow_epoch
        if style == "mixed":
            style = "utc" if index % 2 == 0 else "et"
        tz = ET if style == "et" else timezone.utc
        return str(int(datetime.combine(day, dtime.min, tzinfo=tz).timestamp()))

    def everflow_wire(self, day: date) -> list[dict[str, Any]]:
        out = []
        for i, row in enumerate(self.everflow_rows(day)):
            columns = []
            if row["affiliate_id"] is not None:
                columns.append({"column_type": "affiliate", "id": str(row["affiliate_id"]), "label": row["affiliate_label"]})
            if row["advertiser_id"] is not None:
                columns.append({"column_type": "advertiser", "id": str(row["advertiser_id"]), "label": row["advertiser_label"]})
            elif i % 2:  # a missing id also shows up as an empty one
                columns.append({"column_type": "advertiser", "id": "", "label": ""})
            columns.append({"column_type": "date", "id": self._epoch(day, i), "label": ""})
            out.append({
                "columns": columns,
                "reporting": {
                    "imp": 0, "total_click": row["clicks"], "unique_click": row["clicks"],
                    "cv": row["conversions"], "view_through_cv": 0, "event": 0,
                    "revenue": float(row["revenue"]), "payout": float(row["payout"]),
                    "profit": float(row["profit"]), "cvr": 0.0, "epc": 0.0,
                },
            })
        return out

    def redtrack_wire(self, day: date) -> Any:
        rng = random.Random(f"rt-wire:{self.seed}:{day.isoformat()}")
        out = []
        for row in self.redtrack_rows(day):
            wire: dict[str, Any] = {}
            wire[rng.choice(["source_id", "sourceId", "traffic_source_id", "trafficSourceId"])] = row["source_id"]
            wire[rng.choice(["source", "traffic_source", "trafficSource", "source_name", "sourceName"])] = row["source_name"]
            if row["source_alias"] is not None:
                wire[rng.choice(["source_alias", "sourceAlias", "traffic_source_alias"])] = row["source_alias"]
            as_text = rng.random() < 0.4  # numbers may arrive as strings
            wire[rng.choice(["clicks", "total_clicks"])] = str(row["clicks"]) if as_text else row["clicks"]
            if row["conversions"] is not None:
                wire["conversions"] = str(row["conversions"]) if as_text else row["conversions"]
            # never to be used: differs from conversions on purpose
            wire["total_conversions"] = (row["conversions"] or 0) + rng.randint(1, 9)
            wire[rng.choice(["cost", "spend", "total_cost"])] = str(row["cost"]) if as_text else float(row["cost"])
            wire["roi"] = round(rng.uniform(-1, 3), 3)
            out.append(wire)
        envelope = rng.choice([None, "rows", "items", "data", "results"])
        return out if envelope is None else {envelope: out, "total": {"clicks": 0}}

    # -- request handling (called by the handler thread) -----------------------------------

    def _take_fault(self, api: str) -> int | None:
        for fault in self._faults:
            if fault.remaining > 0 and fault.api in (None, api):
                fault.remaining -= 1
                return fault.status
        return None

    def handle(self, method: str, target: str, headers: dict[str, str], raw_body: bytes) -> tuple[int, dict[str, str], Any]:
        now = time.monotonic()
        parts = urlsplit(target)
        path = parts.path.rstrip("/") or "/"
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        api = {EVERFLOW_PATH: "everflow", REDTRACK_PATH: "redtrack"}.get(path, "unknown")
        body: Any = None
        if raw_body:
            try:
                body = json.loads(raw_body)
            except ValueError:
                body = raw_body.decode("utf-8", "replace")
        key_header = {"everflow": "x-eflow-api-key", "redtrack": "x-api-key"}.get(api)
        expected_key = {"everflow": self.everflow_key, "redtrack": self.redtrack_key}.get(api)
        safe_headers = {k.lower(): v for k, v in headers.items()}
        for name in ("x-eflow-api-key", "x-api-key"):
            if name in safe_headers:
                safe_headers[name] = "<ok>" if safe_headers[name] == expected_key else "<wrong>"
        safe_query = dict(query)
        if "api_key" in safe_query:
            safe_query["api_key"] = "<ok>" if query["api_key"] == expected_key else "<wrong>"
        self._wait_at_hold(api)
        now = time.monotonic()  # after a hold: the rate limit counts from the answer
        record = RecordedRequest(api, method, path, safe_query, body, safe_headers, now)
        with self._lock:
            self.requests.append(record)
            status, extra, payload = self._respond(api, method, query, headers, body, key_header, expected_key, now)
        record.status = status
        return status, extra, payload

    def _respond(self, api, method, query, headers, body, key_header, expected_key, now):
        lower = {k.lower(): v for k, v in headers.items()}
        if api == "unknown" or (api == "redtrack" and method != "GET") or (api == "everflow" and method != "POST"):
            return 404, {}, {"error": f"no route {method} {api}"}
        given = lower.get(key_header) if api == "everflow" else query.get("api_key")
        if not given:
            return 401, {}, {"error": "missing api key"}
        if given != expected_key:
            return 403, {}, {"error": "invalid api key"}
        if api == "redtrack":  # ~1 request/s, every request counts
            last, self._last_redtrack = self._last_redtrack, now
            if last is not None and now - last < self.rate_limit_interval:
                return 429, self._retry_after_header(), {"error": "rate limit exceeded"}
        fault = self._take_fault(api)
        if fault is not None:
            extra = self._retry_after_header() if fault == 429 else {}
            return fault, extra, {"error": f"injected {fault}"}
        try:
            if api == "everflow":
                return 200, {}, self._everflow(body)
            return 200, {}, self._redtrack(query)
        except _BadRequest as exc:
            return 400, {}, {"error": str(exc)}

    def _retry_after_header(self) -> dict[str, str]:
        return {"Retry-After": self.retry_after} if self.retry_after else {}

    def _everflow(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _BadRequest("body must be a JSON object")
        start, end = _day(body, "from"), _day(body, "to")
        if end < start:
            raise _BadRequest("'to' is before 'from'")
        if body.get("timezone_id") != 80:
            raise _BadRequest("timezone_id must be 80 (America/New_York) for this stand-in")
        wanted = {c.get("column") for c in body.get("columns") or [] if isinstance(c, dict)}
        if wanted != {"affiliate", "advertiser", "date"}:
            raise _BadRequest("columns must group by affiliate, advertiser and date")
        q = body.get("query") or {}
        page, limit = int(q.get("page", 1)), int(q.get("limit", 10000))
        if page < 1 or not 1 <= limit <= 10000:
            raise _BadRequest("page >= 1 and 1 <= limit <= 10000")
        rows: list[dict[str, Any]] = []
        day = start
        while day <= end:
            rows.extend(self.everflow_wire(day))
            day += timedelta(days=1)
        return {"table": rows[(page - 1) * limit: page * limit],
                "incomplete_results": False, "summary": {"total_rows": len(rows)}}

    def _redtrack(self, query: dict[str, str]) -> Any:
        start, end = _day(query, "date_from"), _day(query, "date_to")
        if start != end:
            raise _BadRequest("date_from and date_to must be the same day (one day per request)")
        if query.get("timezone") != "America/New_York" or query.get("group") != "source":
            raise _BadRequest("timezone=America/New_York and group=source are required")
        return self.redtrack_wire(start)


class _BadRequest(ValueError):
    pass


def _day(data: dict, key: str) -> date:
    try:
        return date.fromisoformat(str(data[key]))
    except (KeyError, ValueError):
        raise _BadRequest(f"{key} must be a YYYY-MM-DD day") from None


class _Handler(BaseHTTPRequestHandler):
    standin: ApiStandin
    protocol_version = "HTTP/1.1"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        status, extra, payload = self.standin.handle(self.command, self.path, dict(self.headers), raw)
        data = json.dumps(payload, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet; tests read .requests
        pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--everflow-key", default="ef-test-key")
    parser.add_argument("--redtrack-key", default="rt-test-key")
    args = parser.parse_args(argv)
    standin = ApiStandin(args.everflow_key, args.redtrack_key, seed=args.seed, port=args.port).start()
    print(f"Everflow + RedTrack stand-in on {standin.url} (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()


if __name__ == "__main__":
    main()
