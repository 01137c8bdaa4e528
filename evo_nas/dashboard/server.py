"""The dashboard's web server: the standard library's threading HTTP server, read-only.

Safe by default. It binds 127.0.0.1 and then answers only requests addressed to a loopback
name (so that a web page elsewhere cannot reach it by DNS rebinding); bound to any other
address it requires the token printed at start (in the address once, then as a cookie). A
request names a run by its number and a cell by its evaluation index, never a path; the
page's own files are a fixed set read into memory at start. Nothing is written anywhere:
the export and the cell drawings are made in memory.
"""

from __future__ import annotations

import hmac
import importlib.resources
import importlib.util
import io
import ipaddress
import json
import re
import secrets
import socket
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from evo_nas.dashboard.runs import DashboardError, RunFeed, RunSet
from evo_nas.reports.summary import export_files, format_objective, space_of

#: the cookie that carries the token after the first request (off loopback)
COOKIE = "evo_nas_token"
#: cell drawings kept in memory
CELL_CACHE = 128
#: the page's files: URL path -> (file under static/, content type)
PAGE_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/static/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
}
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'"
)


class MissingExtra(DashboardError):
    """The optional packages the dashboard needs are not installed."""


def plotly_js() -> Path:
    """plotly.js as the ``plotly`` package ships it (served by the dashboard: no CDN)."""
    spec = importlib.util.find_spec("plotly")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    for folder in folders:
        path = Path(folder) / "package_data" / "plotly.min.js"
        if path.is_file():
            return path
    raise MissingExtra(
        "the dashboard needs the 'dashboard' extra: pip install 'evo-nas[dashboard]' "
        "(plotly, whose JavaScript it serves, is not installed)"
    )


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def required_token(host: str, token: str | None) -> str | None:
    """The token requests must carry: the one given, else a random one unless ``host`` is a
    loopback address (None: no token needed)."""
    return token if token or is_loopback(host) else secrets.token_urlsafe(18)


def _host_name(header: str) -> str:
    """The name of a Host header, without its port (``[::1]:8765`` -> ``::1``)."""
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class DashboardServer(ThreadingHTTPServer):
    """Serves the page and its data for ``runs`` (see the module's docstring)."""

    daemon_threads = True

    def __init__(
        self,
        runs: RunSet,
        host: str = "127.0.0.1",
        port: int = 8765,
        token: str | None = None,
        refresh_s: float = 2.0,
    ) -> None:
        self.runs = runs
        self.loopback = is_loopback(host)
        self.token = required_token(host, token)
        self.files = {
            "/static/plotly.min.js": (plotly_js().read_bytes(), "text/javascript; charset=utf-8")
        }
        static = importlib.resources.files("evo_nas.dashboard") / "static"
        for route, (name, kind) in PAGE_FILES.items():
            data = (static / name).read_bytes()
            if name == "index.html":
                data = data.replace(b"{{refresh_ms}}", str(int(refresh_s * 1000)).encode())
            self.files[route] = (data, kind)
        self.draw_lock = threading.Lock()
        self.cells: OrderedDict[tuple[int, int, int], bytes] = OrderedDict()
        self.spaces: dict[int, Any] = {}
        if ":" in host.strip("[]"):
            self.address_family = socket.AF_INET6
        super().__init__((host.strip("[]"), port), Handler)

    @property
    def url(self) -> str:
        """The page's address (with the token when one is required)."""
        host, port = self.server_address[:2]
        shown = f"[{host}]" if ":" in str(host) else host
        query = f"?token={self.token}" if self.token else ""
        return f"http://{shown}:{port}/{query}"

    def space(self, run_id: int, feed: RunFeed) -> Any:
        """The search space of run ``run_id`` (built once, from its config.yaml)."""
        if run_id not in self.spaces:
            self.spaces[run_id] = space_of(feed.path)
        return self.spaces[run_id]

    def cell_png(self, run_id: int, feed: RunFeed, index: int, genotype: Any, title: str) -> bytes:
        """Evaluation ``index``'s cell drawn (kept for the next request)."""
        from evo_nas.reports.plots import cell_png

        key = (run_id, feed.epoch, index)
        with self.draw_lock:  # matplotlib draws one figure at a time
            if key not in self.cells:
                space = self.space(run_id, feed)
                self.cells[key] = cell_png(space, space.from_json(genotype), title)
                while len(self.cells) > CELL_CACHE:
                    self.cells.popitem(last=False)
            self.cells.move_to_end(key)
            return self.cells[key]


class Handler(BaseHTTPRequestHandler):
    """One request: checked (host, token), then routed to the page's files or its data."""

    server: DashboardServer
    protocol_version = "HTTP/1.1"
    server_version = "evo-nas-dashboard"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        """Quiet: a poll every few seconds is not news."""

    def do_GET(self) -> None:  # noqa: N802 (the base class's name)
        try:
            self.route()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the page went away mid-answer

    # -- checks -------------------------------------------------------------------------------
    def _authorized(self, query: dict[str, list[str]]) -> bool:
        srv = self.server
        if srv.loopback and not is_loopback(_host_name(self.headers.get("Host", ""))):
            self.send_error_json(HTTPStatus.FORBIDDEN, "this dashboard answers only on localhost")
            return False
        if srv.token is None:
            return True
        cookie: SimpleCookie = SimpleCookie()
        try:
            cookie.load(self.headers.get("Cookie", ""))
        except CookieError:  # a malformed cookie header is no token
            cookie = SimpleCookie()
        offered = [
            *(query.get("token") or []),
            self.headers.get("X-Evo-Nas-Token", ""),
            cookie[COOKIE].value if COOKIE in cookie else "",
        ]
        if any(t and hmac.compare_digest(t.encode(), srv.token.encode()) for t in offered):
            return True
        self.send_error_json(HTTPStatus.UNAUTHORIZED, "a token is required (printed at start)")
        return False

    # -- routing ------------------------------------------------------------------------------
    def route(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if not self._authorized(query):
            return
        if url.path in self.server.files:
            data, kind = self.server.files[url.path]
            headers = {}
            if url.path == "/" and self.server.token and query.get("token"):
                headers["Set-Cookie"] = (
                    f"{COOKIE}={self.server.token}; HttpOnly; SameSite=Strict; Path=/"
                )
            cache = "no-cache" if url.path == "/" else "max-age=3600"
            self.send_bytes(data, kind, cache=cache, headers=headers)
            return
        for pattern, handler in _ROUTES:
            match = pattern.fullmatch(url.path)
            if match:
                handler(self, query, *(int(g) for g in match.groups()))
                return
        self.send_error_json(HTTPStatus.NOT_FOUND, "no such page")

    def _feed(self, run_id: int) -> RunFeed | None:
        feed = self.server.runs.feed(run_id)
        if feed is None:
            self.send_error_json(HTTPStatus.NOT_FOUND, f"no run {run_id}")
        return feed

    def overview(self, query: dict[str, list[str]]) -> None:
        known = (query.get("v") or [None])[0]
        self.send_json(self.server.runs.overview(known))

    def run(self, query: dict[str, list[str]], run_id: int) -> None:
        feed = self._feed(run_id)
        if feed is None:
            return
        feed.refresh()
        epoch, known, version = (_int(query, k) for k in ("epoch", "n", "v"))
        if epoch == feed.epoch and version == feed.version:
            self.send_json({"unchanged": True, "version": feed.version, "epoch": feed.epoch})
            return
        self.send_json(feed.payload(epoch, known or 0))

    def _evaluation(self, run_id: int, index: int) -> tuple[Any, Any, Any] | None:
        """The run's feed, its row ``index`` and genotype; None when answered with an error."""
        feed = self._feed(run_id)
        if feed is None:
            return None
        found = feed.genotype(index)
        if found is None:
            self.send_error_json(HTTPStatus.NOT_FOUND, f"no evaluation {index} in this run")
            return None
        return feed, *found

    def cell(self, query: dict[str, list[str]], run_id: int, index: int) -> None:
        found = self._evaluation(run_id, index)
        if found is not None:
            _, row, genotype = found
            self.send_json({"row": row, "genotype": genotype})

    def cell_png(self, query: dict[str, list[str]], run_id: int, index: int) -> None:
        found = self._evaluation(run_id, index)
        if found is None:
            return
        feed, row, genotype = found
        title = f"evaluation {index}: objective {format_objective(row['o'] or float('inf'))}"
        try:
            png = self.server.cell_png(run_id, feed, index, genotype, title)
        except Exception as e:  # a config or genotype this version cannot read: say so
            self.send_error_json(HTTPStatus.CONFLICT, f"cannot draw this cell ({e})")
            return
        self.send_bytes(png, "image/png", cache="max-age=3600")

    def export(self, query: dict[str, list[str]], run_id: int) -> None:
        feed = self._feed(run_id)
        if feed is None:
            return
        top = min(max(_int(query, "top") or 5, 1), 1000)
        try:
            files = export_files(feed.path, top)
        except (OSError, ValueError, KeyError, TypeError) as e:
            self.send_error_json(HTTPStatus.CONFLICT, f"cannot export this run ({e})")
            return
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, text in files.items():
                zf.writestr(name, text)
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", feed.name)
        self.send_bytes(
            buf.getvalue(),
            "application/zip",
            headers={"Content-Disposition": f'attachment; filename="{name}_top{top}.zip"'},
        )

    # -- answers ------------------------------------------------------------------------------
    def send_bytes(
        self,
        data: bytes,
        kind: str,
        status: HTTPStatus = HTTPStatus.OK,
        cache: str = "no-store",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", cache)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("Referrer-Policy", "no-referrer")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def send_json(self, value: Any, status: HTTPStatus = HTTPStatus.OK) -> None:
        data = json.dumps(value, allow_nan=False, separators=(",", ":")).encode()
        self.send_bytes(data, "application/json", status)

    def send_error_json(self, status: HTTPStatus, message: str) -> None:
        self.send_json({"error": message}, status)


def _int(query: dict[str, list[str]], name: str) -> int | None:
    """A whole-number query parameter (None when absent or not a number)."""
    value = (query.get(name) or [""])[0]
    return int(value) if value.isdigit() and len(value) < 12 else None


_Route = Callable[..., None]
_ROUTES: list[tuple[re.Pattern[str], _Route]] = [
    (re.compile(r"/api/overview"), Handler.overview),
    (re.compile(r"/api/run/(\d{1,6})"), Handler.run),
    (re.compile(r"/api/run/(\d{1,6})/cell/(\d{1,9})"), Handler.cell),
    (re.compile(r"/api/run/(\d{1,6})/cell/(\d{1,9})\.png"), Handler.cell_png),
    (re.compile(r"/api/run/(\d{1,6})/export\.zip"), Handler.export),
]


def make_server(
    paths: list[Path],
    host: str = "127.0.0.1",
    port: int = 8765,
    token: str | None = None,
    refresh_s: float = 2.0,
) -> DashboardServer:
    """A dashboard over ``paths`` (run directories or compare folders), listening; raises
    :class:`DashboardError` (one line) for a path it cannot show or a missing extra, and
    ``OSError`` when it cannot listen."""
    plotly_js()  # the missing extra is said before anything else
    runs = RunSet(paths)
    runs.overview()  # read every run once now, not while the first page waits
    return DashboardServer(runs, host, port, token, refresh_s)
