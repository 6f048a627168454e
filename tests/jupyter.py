"""JupyterLab and Chromium for the real-browser test.

* :class:`JupyterLab` starts ``python -m jupyterlab`` on 127.0.0.1 with a random token, in its own
  process group, with throw-away config, settings, workspace and runtime directories (so the
  developer's own JupyterLab settings never matter), waits until the REST API answers, and stops it
  by its pid (SIGTERM to its process group, SIGKILL after a grace period).
* :func:`chromium_or_skip` finds Debian's ``chromium`` (never a downloaded browser) and Playwright
  for Python; when one is missing the test is skipped with a loud warning, and fails under ``CI=true``.
* :class:`Tracker` is a tiny HTTP server on 127.0.0.1 recording every path requested: remote
  images, style sheets and scripts of a hostile mail point at it, so a test can prove none was loaded.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
#: The launch flags the issue prescribes (headless, no sandbox as root, no phoning home).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]

#: JupyterLab user settings for a deterministic UI: every cell rendered (no virtual scrolling), no
#: news or update checks.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
}


def _missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"the browser test needs {reason} under CI", pytrace=False)
    message = f"!!! BROWSER TEST SKIPPED: {reason} !!!"
    warnings.warn(message, stacklevel=3)
    pytest.skip(message)


def chromium_or_skip() -> str:
    """The Chromium executable and Playwright, or skip loudly (fail under CI)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("Playwright for Python (pip install -e '.[dev]')")
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if not path:
        _missing("Debian's chromium (apt-get install chromium; `make test` installs it when root)")
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class JupyterLab:
    """A private JupyterLab 4 server on 127.0.0.1 (see the module docstring)."""

    host = "127.0.0.1"

    def __init__(self, root_dir: Path, state_dir: Path, *, env: dict[str, str] | None = None) -> None:
        self.root_dir = Path(root_dir)
        self.state_dir = Path(state_dir)
        self.extra_env = dict(env or {})
        self.token = secrets.token_hex(16)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_file = self.state_dir / "jupyterlab.log"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def url(self, path: str = "lab") -> str:
        sep = "&" if "?" in path else "?"
        return f"http://{self.host}:{self.port}/{path.lstrip('/')}{sep}token={self.token}"

    def start(self, timeout: float = 60.0) -> "JupyterLab":
        settings = self.state_dir / "user-settings"
        for rel, value in LAB_SETTINGS.items():
            f = settings / rel
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps(value))
        for d in ("config", "runtime", "workspaces", "data"):
            (self.state_dir / d).mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.extra_env,
               "JUPYTER_CONFIG_DIR": str(self.state_dir / "config"),
               "JUPYTER_RUNTIME_DIR": str(self.state_dir / "runtime"),
               "JUPYTER_DATA_DIR": str(self.state_dir / "data"),
               "JUPYTER_PLATFORM_DIRS": "1", "PYTHONUNBUFFERED": "1"}
        self.port = free_port()
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser",
               f"--ServerApp.ip={self.host}", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root_dir}",
               f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={self.state_dir / 'workspaces'}",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.news_url=None",
               "--ServerApp.allow_root=True"]
        log = open(self.log_file, "wb")
        self.proc = subprocess.Popen(cmd, cwd=self.root_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url("api/status"), timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"JupyterLab did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def stop(self, grace: float = 10.0) -> None:
        """Stop the server (and the kernels it started) by its pid's process group."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        try:  # kernels live in the same process group; make sure none is left
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> "JupyterLab":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Tracker:
    """An HTTP server on 127.0.0.1 that answers every GET with a 1x1 GIF and records the path."""

    GIF = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")

    def __init__(self) -> None:
        self.paths: list[str] = []
        tracker = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server hook
                tracker.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/gif")
                self.send_header("Content-Length", str(len(Tracker.GIF)))
                self.end_headers()
                self.wfile.write(Tracker.GIF)

            do_POST = do_GET

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}/track"
        self.thread = threading.Thread(target=self.server.serve_forever, name="tracker", daemon=True)

    def __enter__(self) -> "Tracker":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
