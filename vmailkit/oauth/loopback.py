"""The browser sign-in's redirect: a one-shot HTTP listener on 127.0.0.1 (RFC 8252 section 7.3).

The authorization server sends the browser back to ``http://127.0.0.1:PORT/`` with ``code`` and
``state``; the listener checks the state, answers with a short page and hands the code over.
"""
from __future__ import annotations

import html
import threading
import webbrowser
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlsplit

from ..errors import SignInError


def wait_for_redirect(authorize: Callable[[str], tuple[str, str]], *, open_browser: bool, timeout: float,
                      account: str, show: Callable[[str], None] | None = None) -> tuple[str, str]:
    """Listen on a free loopback port, send the person to ``authorize(redirect_uri)``'s URL, return (code, redirect_uri).

    Raises :class:`SignInError` when the server reports an error, the state does not match, or
    nothing arrives within ``timeout`` seconds.
    """
    result: dict[str, str] = {}
    done = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            query = parse_qs(urlsplit(self.path).query)
            for key in ("code", "state", "error"):
                if key in query:
                    result[key] = query[key][0]
            ok = "code" in result
            body = ("<p>Signed in. You can close this window and go back to vmailkit.</p>" if ok else
                    f"<p>The sign-in did not succeed ({html.escape(result.get('error', 'no code'))}).</p>")
            self.send_response(200 if ok else 400)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(body.encode())
            done.set()

        def log_message(self, format: str, *args: object) -> None:  # never log the code
            return

    server = HTTPServer(("127.0.0.1", 0), Handler)
    redirect_uri = f"http://127.0.0.1:{server.server_address[1]}/"
    thread = threading.Thread(target=server.serve_forever, name="vmailkit-signin-redirect", daemon=True)
    thread.start()
    try:
        url, state = authorize(redirect_uri)
        if show is not None:
            show(url)
        if open_browser:
            webbrowser.open(url)
        if not done.wait(timeout):
            raise SignInError(account, "the browser sign-in did not come back in time: start it again")
    finally:
        server.shutdown()
        server.server_close()
    if "error" in result:
        raise SignInError(account, f"the sign-in was not granted ({result['error'].replace('_', ' ')})")
    if result.get("state") != state or "code" not in result:
        raise SignInError(account, "the browser sign-in came back without a valid answer: start it again")
    return result["code"], redirect_uri
