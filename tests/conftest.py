"""Test-suite wide setup: the compatibility layer, deterministic seeds, CUDA-only test skipping."""
import logging
import os
import random
import sys

import numpy as np
import pytest
import torch

import shared  # noqa: F401  (applies shared.compat before detectron2 / fastreid / lvis are imported)

# No test reaches the internet: a published weights file is served by the loopback `weights_server` fixture
# (which lifts this for its test) or the test fails with the offline error naming the file.
os.environ["TINYVISION_OFFLINE"] = "1"


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


#: loggers that training code configures (detectron2's setup_logger stops their propagation and adds handlers)
_CONFIGURED_LOGGERS = ("shared", "detectron2", "fvcore", "fastreid", "simd", "iif", "adasp", "rdcd", "das",
                       "d2")


@pytest.fixture(autouse=True)
def _restore_logging():
    """A test that runs a training worker in this process (the demos' determinism tests) sets up the project
    loggers as a worker does; restore them afterwards so that later tests' log capture (caplog, which listens
    at the root) still sees e.g. ``shared.kernels``."""
    saved = {}
    for name in _CONFIGURED_LOGGERS:
        logger = logging.getLogger(name)
        saved[name] = (list(logger.handlers), logger.propagate, logger.level)
    yield
    for name, (handlers, propagate, level) in saved.items():
        logger = logging.getLogger(name)
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers[:] = handlers
        logger.propagate, logger.level = propagate, level


def readme_section_blocks(readme: str, heading: str) -> list:
    """``(language, text)`` of every fenced code block in the section of ``readme`` titled ``heading`` (up to
    the next heading of the same or a higher level)."""
    lines = open(readme, encoding="utf-8").read().splitlines()
    start = next((i for i, line in enumerate(lines) if line.lstrip("#").strip() == heading
                  and line.startswith("#")), None)
    if start is None:
        raise AssertionError(f"{readme} has no section {heading!r}")
    level = len(lines[start]) - len(lines[start].lstrip("#"))
    blocks, language, body = [], None, []
    for line in lines[start + 1:]:
        if language is None and line.startswith("#") and len(line) - len(line.lstrip("#")) <= level:
            break
        if line.startswith("```"):
            if language is None:
                language, body = line[3:].strip() or "text", []
            else:
                blocks.append((language, "\n".join(body) + "\n"))
                language = None
        elif language is not None:
            body.append(line)
    return blocks


@pytest.fixture
def run_readme_section():
    """``run(readme, heading, cwd, env=None)``: run every ``bash`` and ``python`` block of a README section
    exactly as shown, in ``cwd`` (bash with this interpreter's folder first on PATH, so ``python`` and
    ``.venv/bin/python`` are the test's interpreter when ``cwd/.venv`` links to it); returns the completed
    processes. A block that fails fails the test with its output."""
    import os
    import subprocess
    import sys

    def run(readme, heading, cwd, env=None, timeout=900):
        env = dict(os.environ if env is None else env)
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        done = []
        blocks = [b for b in readme_section_blocks(readme, heading) if b[0] in ("bash", "python")]
        assert blocks, f"{readme} section {heading!r} shows no bash or python block"
        for language, text in blocks:
            if language == "bash":
                argv = ["bash", "-euo", "pipefail", "-c", text]
            else:
                argv = [sys.executable, "-c", text]
            out = subprocess.run(argv, cwd=str(cwd), env=env, capture_output=True, text=True, timeout=timeout)
            assert out.returncode == 0, (f"{language} block of {readme} failed:\n{text}\n"
                                         f"{out.stdout[-3000:]}\n{out.stderr[-5000:]}")
            done.append(out)
        return done

    return run


@pytest.fixture(scope="session")
def train_in_user_folder(tmp_path_factory):
    """``train(name, argv) -> folder``: a user's folder holding this repository's ``projects/``
    (``./datasets``: DETECTRON2_DATASETS / FASTREID_DATASETS unset) where ``python <argv>`` (a training
    command) exits 0."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]

    def train(name, argv, timeout=900):
        cwd = tmp_path_factory.mktemp(name)
        (cwd / "projects").symlink_to(repo / "projects")
        env = {k: v for k, v in os.environ.items() if k not in ("DETECTRON2_DATASETS", "FASTREID_DATASETS")}
        out = subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True,
                             timeout=timeout)
        assert out.returncode == 0, f"training exited {out.returncode}:\n{out.stderr[-5000:]}"
        return cwd

    return train


@pytest.fixture(scope="session")
def same_detections():
    """``check(ours, theirs)``: two lists of COCO result records hold the same detections (category, box
    within 1e-4 px, score within 1e-6, and the RLE mask when present), compared in score order."""

    def check(ours, theirs):
        def key(r):
            return (-r["score"], r["category_id"], tuple(r["bbox"]))

        ours, theirs = sorted(ours, key=key), sorted(theirs, key=key)
        assert len(ours) == len(theirs) > 0
        assert [r["category_id"] for r in ours] == [r["category_id"] for r in theirs]
        np.testing.assert_allclose([r["bbox"] for r in ours], [r["bbox"] for r in theirs], atol=1e-4)
        np.testing.assert_allclose([r["score"] for r in ours], [r["score"] for r in theirs], atol=1e-6)
        assert [r.get("segmentation") for r in ours] == [r.get("segmentation") for r in theirs]

    return check


@pytest.fixture(scope="session")
def tensorboard_scalar_tags():
    """``tags(folder) -> set``: the scalar tags of the TensorBoard event files in ``folder``."""

    def tags(folder):
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        accumulator = EventAccumulator(str(folder))
        accumulator.Reload()
        return set(accumulator.Tags()["scalars"])

    return tags


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


@pytest.fixture
def run_demo_quick(tmp_path):
    """Run a project's ``demo.py`` in a fresh process as ``make demo-*`` starts it, at its reduced size
    (``DEMO_QUICK=1``, or the ``--quick`` flag with ``quick_flag=True``), its datasets under
    ``tmp_path/datasets`` (``datasets_var``: DETECTRON2_DATASETS or FASTREID_DATASETS) and its output under
    ``tmp_path/out``; fails on a non-zero exit with the end of stderr. Returns (stdout, the runs of
    ``demo_results.json``, the output folder)."""
    import json
    import subprocess

    def run(demo: str, datasets_var: str, *args: str, quick_flag: bool = False):
        env = dict(os.environ, **{datasets_var: str(tmp_path / "datasets")})
        if quick_flag:
            env.pop("DEMO_QUICK", None)
        else:
            env["DEMO_QUICK"] = "1"
        out = tmp_path / "out"
        quick = ["--quick"] if quick_flag else []
        command = [sys.executable, demo, *quick, "--output-dir", str(out), *args]
        proc = subprocess.run(command, env=env, cwd=str(tmp_path), capture_output=True, text=True,
                              timeout=1800)
        assert proc.returncode == 0, proc.stderr[-3000:]
        with open(out / "demo_results.json") as f:
            return proc.stdout, json.load(f), out

    return run
