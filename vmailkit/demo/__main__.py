"""``python -m vmailkit.demo``: the demo (default), ``lab``, ``server``, and the internal ``serve``.

::

    python -m vmailkit.demo                 # make demo: server, batch notebook, summary
    python -m vmailkit.demo lab             # make lab: server in the background + JupyterLab
    python -m vmailkit.demo server          # only the mail server, in the foreground (Ctrl-C stops it)
"""
from __future__ import annotations

import argparse
import os
import sys

from . import DEFAULT_DIR, DEFAULT_IMAP_PORT, DEFAULT_POP3_PORT, DemoError
from .server import HOST, DemoServerError


def _ports(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dir", default=DEFAULT_DIR, help="where the demo keeps its files (default: demo/)")
    parser.add_argument("--imap-port", type=int, default=DEFAULT_IMAP_PORT,
                        help="IMAP port on 127.0.0.1 (default %(default)s, or $VMAILKIT_DEMO_IMAP_PORT)")
    parser.add_argument("--pop3-port", type=int, default=DEFAULT_POP3_PORT,
                        help="POP3 port on 127.0.0.1 (default %(default)s, or $VMAILKIT_DEMO_POP3_PORT)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vmailkit.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    _ports(sub.add_parser("run", help="the demo (default)"))
    lab = sub.add_parser("lab", help="the demo mail server in the background and JupyterLab on notebooks/")
    _ports(lab)
    lab.add_argument("--port", type=int, default=None, help="JupyterLab's port (default: its own)")
    lab.add_argument("--no-browser", action="store_true", help="do not open a browser")
    server = sub.add_parser("server", help="only the demo mail server, in the foreground")
    _ports(server)
    serve = sub.add_parser("serve", help=argparse.SUPPRESS)   # the server child process
    serve.add_argument("--state-file", required=True)
    serve.add_argument("--host", default=HOST)
    serve.add_argument("--imap-port", type=int, default=0)
    serve.add_argument("--pop3-port", type=int, default=0)
    serve.add_argument("--parent-pid", type=int, default=None)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in ("run", "lab", "server", "serve") and argv[0] not in ("-h", "--help")):
        argv.insert(0, "run")   # the demo is the default command
    args = parser.parse_args(argv)
    command = args.command
    try:
        if command == "serve":
            from .content import generate
            from .server import serve_forever, served_mailboxes

            serve_forever(served_mailboxes(generate(), os.environ), host=args.host, imap_port=args.imap_port,
                          pop3_port=args.pop3_port, state_file=args.state_file, parent_pid=args.parent_pid)
            return 0
        if command == "lab":
            from .lab import run_lab

            return run_lab(args.dir, imap_port=args.imap_port, pop3_port=args.pop3_port, jupyter_port=args.port,
                           open_browser=not args.no_browser)
        if command == "server":
            from .lab import run_server

            return run_server(args.dir, imap_port=args.imap_port, pop3_port=args.pop3_port)
        from . import run_demo

        run_demo(args.dir, imap_port=args.imap_port, pop3_port=args.pop3_port)
        return 0
    except (DemoError, DemoServerError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Interrupted; the demo mail server is stopped.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
