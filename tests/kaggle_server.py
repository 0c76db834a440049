"""A stand-in for Kaggle's API on 127.0.0.1, reached by the real kagglehub client as a proxy.

kagglehub is pointed here with KAGGLE_API_ENVIRONMENT=LOCALHOST (API at http://localhost)
and HTTP_PROXY=http://127.0.0.1:<port>, so every request arrives with its absolute URL.
"""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse


class FakeKaggle(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.archives: dict[str, bytes] = {}  # "owner/slug" -> zip bytes
        self.errors: dict[str, int] = {}  # "owner/slug" -> HTTP status to answer
        self.requests: list[tuple[str, str]] = []  # (method, path)
        self.authorizations: list[str] = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def proxy(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "KAGGLE_API_ENVIRONMENT": "LOCALHOST",
            "HTTP_PROXY": self.proxy,
            "http_proxy": self.proxy,
            "NO_PROXY": "",
            "no_proxy": "",
            **extra,
        }

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.shutdown()
        self.server_close()


class Handler(BaseHTTPRequestHandler):
    server: FakeKaggle

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def _reply(self, status: int, body: bytes, content_type: str, headers=None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: dict) -> None:
        self._reply(status, json.dumps(data).encode(), "application/json")

    def do_POST(self) -> None:
        path = urlparse(self.path).path
        self.server.requests.append(("POST", path))
        self.server.authorizations.append(self.headers.get("Authorization", ""))
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        owner = request.get("ownerSlug", "")
        slug = request.get("datasetSlug", "")
        key = f"{owner}/{slug}"
        if key in self.server.errors:
            status = self.server.errors[key]
            self._json(status, {"code": status, "message": f"answer {status} for {key}"})
        elif key not in self.server.archives:
            self._json(404, {"code": 404, "message": f"{key} not found"})
        elif path.endswith("/GetDataset"):
            self._json(200, {"ref": key, "currentVersionNumber": 2})
        elif path.endswith("/DownloadDataset"):
            self._reply(302, b"", "text/plain", {"Location": f"http://localhost/files/{key}.zip"})
        else:
            self._json(404, {"code": 404, "message": f"no API {path}"})

    def do_GET(self) -> None:
        path = urlparse(self.path).path
        self.server.requests.append(("GET", path))
        match = re.fullmatch(r"/files/(.+)\.zip", path)
        if match and match.group(1) in self.server.archives:
            self._reply(200, self.server.archives[match.group(1)], "application/zip")
        else:
            self._reply(404, b"not found", "text/plain")
