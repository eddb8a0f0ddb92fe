"""Test-suite wide setup: the compatibility layer, deterministic seeds, CUDA-only test skipping."""
import random

import numpy as np
import pytest
import torch

import shared  # noqa: F401  (applies shared.compat before detectron2 / fastreid / lvis are imported)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


# ------------------------------------------------------------------------------------- pretrained weights
class LoopbackFileServer:
    """An HTTP server on 127.0.0.1 that serves byte strings, counts requests per path and can misbehave
    per path (``"corrupt"``: one byte flipped; ``"truncate"``: half the body under the full Content-Length;
    ``"missing"``: 404), standing in for the weight hosts our users download from."""

    def __init__(self):
        import http.server
        import threading

        server = self
        self.files, self.modes, self.requests, self.delay = {}, {}, {}, 0.0

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                import time

                server.requests[self.path] = server.requests.get(self.path, 0) + 1
                body, mode = server.files.get(self.path), server.modes.get(self.path, "ok")
                if body is None or mode == "missing":
                    self.send_error(404)
                    return
                time.sleep(server.delay)
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if mode == "corrupt":
                    body = body[:-1] + bytes([body[-1] ^ 0xFF])
                elif mode == "truncate":
                    body = body[: len(body) // 2]
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def add(self, path: str, payload: bytes, mode: str = "ok") -> str:
        self.files[path], self.modes[path] = payload, mode
        return self.url + path

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def weights_server(tmp_path, monkeypatch):
    """(server, serve) with an empty weights cache in tmp_path and no network: ``serve(name, payload,
    fmt="torchvision-resnet", mode="ok")`` publishes ``payload`` on the loopback server and registers a
    catalog entry ``name`` for it (with the payload's true sha256 and size) for the duration of the test."""
    import hashlib

    from shared.weights import CATALOG, WeightsEntry

    monkeypatch.setenv("TINYVISION_WEIGHTS_CACHE", str(tmp_path / "weights-cache"))
    monkeypatch.delenv("TINYVISION_OFFLINE", raising=False)
    monkeypatch.delenv("TINYVISION_WEIGHTS_MIRROR", raising=False)
    server = LoopbackFileServer()

    def serve(name, payload, fmt="torchvision-resnet", mode="ok", filename=None):
        filename = filename or name.rsplit("/", 1)[-1] + ".pth"
        url = server.add(f"/{name}/{filename}", payload, mode)
        entry = WeightsEntry(name=name, urls=(url,), sha256=hashlib.sha256(payload).hexdigest(),
                             hash_prefix=None, size=len(payload), format=fmt, source="test",
                             description="served on loopback")
        monkeypatch.setitem(CATALOG, name, entry)
        return entry

    yield server, serve
    server.close()
