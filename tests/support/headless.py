"""Drive a real headless Chromium over the DevTools protocol (no Selenium/Playwright needed).

`open_page(url, cookies=…)` starts Chromium with a fresh profile, sets cookies, loads the page
and returns its HTTP status, visible text and a PNG screenshot. Used by the plugin page test.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
]


def find_chromium() -> str | None:
    for name in (os.environ.get("SIGNALROOM_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


@dataclass
class Page:
    status: int | None
    text: str
    screenshot: bytes


class _Cdp:
    def __init__(self, ws_url: str) -> None:
        from websockets.sync.client import connect

        self.ws = connect(ws_url, max_size=None, open_timeout=20)
        self.ids = itertools.count(1)
        self.events: list[dict] = []

    def call(self, method: str, timeout: float = 30, **params) -> dict:
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_event(self, method: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        for i, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(i)
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if msg.get("method") == method:
                return msg
            self.events.append(msg)


def open_page(url: str, cookies: list[dict] | None = None, timeout: float = 60) -> Page:
    binary = find_chromium()
    if not binary:
        raise RuntimeError("chromium not found: run scripts/system-deps.sh (apt-get install chromium)")
    profile = Path(tempfile.mkdtemp(prefix="signalroom-chromium-"))
    proc = subprocess.Popen(
        [binary, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not start (exit code {proc.poll()})")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            targets = [t for t in json.load(resp) if t.get("type") == "page"]
        cdp = _Cdp(targets[0]["webSocketDebuggerUrl"])
        try:
            cdp.call("Network.enable")
            cdp.call("Page.enable")
            for cookie in cookies or []:
                cdp.call("Network.setCookie", **cookie)
            cdp.call("Page.navigate", url=url)
            cdp.wait_event("Page.loadEventFired", timeout)
            status = None
            for event in cdp.events:
                if event.get("method") == "Network.responseReceived" and event["params"]["type"] == "Document":
                    status = event["params"]["response"]["status"]
            text = cdp.call("Runtime.evaluate", expression="document.body.innerText", returnByValue=True)
            shot = cdp.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
            return Page(status=status, text=text["result"].get("value") or "", screenshot=base64.b64decode(shot["data"]))
        finally:
            cdp.ws.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)
