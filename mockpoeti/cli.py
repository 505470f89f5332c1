"""The `mockpoeti` command: serve, validate, schema, openapi."""

from __future__ import annotations

import argparse
import asyncio
import gc
import ipaddress
import signal
import sys
from collections.abc import Coroutine
from typing import Any, NoReturn

from mockpoeti import __version__, _native
from mockpoeti.base.settings import MAX_KEYS_PER_ACCOUNT, MAX_SESSIONS, Settings
from mockpoeti.base.settings import setting_type as _setting


class _Parser(argparse.ArgumentParser):
    """A usage mistake is one line on stderr and exit 2 (`--help` shows the usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    return {"serve": _serve, "record": _record, "validate": _validate, "schema": _schema, "openapi": _openapi}[args.command](args)


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mockpoeti", description="An offline test double of the poeti.ai API.")
    parser.add_argument("--version", action="version", version=f"mockpoeti {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = commands.add_parser("serve", help="run the server until SIGINT/SIGTERM")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument("--port", type=_setting("port"), default=8080, help="port to bind; 0 picks a free one (default: 8080)")
    serve.add_argument("--scenario", type=_setting("scenarios"), action="append", default=[], metavar="NAME_OR_FILE",
                       help="activate a scenario (repeatable)")
    serve.add_argument("--api-key", type=_setting("api_keys"), action="append", default=[], metavar="KEY",
                       help="accept KEY for the default account (repeatable)")
    serve.add_argument("--seed", type=_setting("seed"), help="make ids and generated text reproducible")
    serve.add_argument("--clock", type=_setting("clock"), metavar="TIME",
                       help="freeze the clock at TIME (ISO 8601 or Unix seconds)")
    serve.add_argument("--fixtures", type=_setting("fixtures"), metavar="DIR",
                       help="a folder whose YAML files replace the shipped fixtures")
    serve.add_argument("--history", action="store_true", help="seed trace history from fixtures/history.yaml")
    serve.add_argument("--admin-token", type=_setting("admin_token"), metavar="TOKEN",
                       help="require TOKEN (X-Admin-Token) on /__admin/")
    # every default and bound is Settings' own (mockpoeti/base/settings.py): no copies here
    defaults = Settings()
    serve.add_argument("--max-traces", type=_setting("max_traces"), default=defaults.max_traces, metavar="N",
                       help="traces kept (default: %(default)s)")
    serve.add_argument("--max-journal", type=_setting("max_journal"), default=defaults.max_journal, metavar="N",
                       help="journal entries kept (default: %(default)s)")
    serve.add_argument("--max-keys", type=_setting("max_keys_per_account"), default=defaults.max_keys_per_account, metavar="N",
                       help=f"API keys an account may have (default: %(default)s, at most {MAX_KEYS_PER_ACCOUNT})")
    serve.add_argument("--header-timeout", type=_setting("header_timeout_s"), default=defaults.header_timeout_s,
                       metavar="SECONDS", help="close a connection whose first request headers are not in by then "
                       "(default: %(default)g)")
    serve.add_argument("--body-timeout", type=_setting("body_timeout_s"), default=defaults.body_timeout_s, metavar="SECONDS",
                       help="answer 408 to a request whose body is not in by then (default: %(default)g)")
    serve.add_argument("--keepalive-timeout", type=_setting("keepalive_timeout_s"), default=defaults.keepalive_timeout_s,
                       metavar="SECONDS", help="close an idle keep-alive connection after this (default: %(default)g)")
    serve.add_argument("--max-sessions", type=_setting("max_sessions"), default=defaults.max_sessions, metavar="N",
                       help=f"sessions (POST /__admin/sessions) alive at once; 0: none (default: %(default)s, "
                       f"at most {MAX_SESSIONS})")
    serve.add_argument("--session-ttl", type=_setting("session_ttl_s"), default=defaults.session_ttl_s, metavar="SECONDS",
                       help="end a session unused this long (default: %(default)g)")

    validate = commands.add_parser("validate", help="check scenario files; one FILE:LINE: message per problem")
    validate.add_argument("targets", nargs="+", metavar="FILE_OR_DIR")
    validate.add_argument("--fixtures", metavar="DIR", help="the fixtures whose error catalog the files may use")

    record = commands.add_parser("record", help="proxy to the real gateway and write what it answers as a scenario file")
    record.add_argument("--upstream", required=True, metavar="URL", help="the gateway to record, e.g. https://api.poeti.ai")
    record.add_argument("--out", required=True, metavar="FILE", help="the scenario file to write (every few seconds and on exit)")
    record.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    record.add_argument("--port", type=_setting("port"), default=8080, help="port to bind; 0 picks a free one (default: 8080)")
    record.add_argument("--timeout", type=float, default=600.0, metavar="SECONDS",
                        help="answer 504 when the upstream is silent this long (default: 600)")
    record.add_argument("--flush-seconds", type=float, default=2.0, metavar="SECONDS",
                        help="write FILE this often while recording (default: 2)")
    record.add_argument("--fixtures", metavar="DIR", help="the fixtures whose error catalog FILE may use")

    commands.add_parser("schema", help="print the scenario files' JSON Schema")
    commands.add_parser("openapi", help="print the OpenAPI 3.1 document of the served API")

    return parser


def _validate(args: argparse.Namespace) -> int:
    from mockpoeti.base.catalog import load_catalog
    from mockpoeti.base.errors import ConfigError
    from mockpoeti.scripting.loader import load_scenario, scenario_files

    try:
        codes = set(load_catalog(args.fixtures).errors)
        files = scenario_files(args.targets)
    except ConfigError as e:
        print("\n".join(e.problems))
        return 1
    problems = []
    for path in files:
        try:
            load_scenario(path, codes)
        except ConfigError as e:
            problems.extend(e.problems)
    if not files:
        problems.append(f"{' '.join(args.targets)}:1: no scenario files (*.yaml, *.yml) found")
    for line in problems:
        print(line)
    if not problems:
        print(f"{len(files)} scenario file{'s' if len(files) != 1 else ''} valid")
    return 1 if problems else 0


def _record(args: argparse.Namespace) -> int:
    """Exit 0 once FILE is written after SIGINT/SIGTERM."""
    from mockpoeti.base.errors import ConfigError
    from mockpoeti.recorder.proxy import make_recorder

    try:
        recorder = make_recorder(args.upstream, args.out, args.timeout, args.flush_seconds, args.fixtures)
    except ValueError as e:
        print(f"mockpoeti: {e}", file=sys.stderr)
        return 2
    except ConfigError as e:
        print("\n".join(e.problems), file=sys.stderr)
        return 1
    return run_until_stopped(recorder.run(args.host, args.port), args.host, args.port)


def _openapi(args: argparse.Namespace) -> int:
    import json

    from mockpoeti.http.routes.openapi import openapi_json

    print(json.dumps(json.loads(openapi_json()), indent=2, ensure_ascii=False))
    return 0


def _schema(args: argparse.Namespace) -> int:
    import json

    from mockpoeti.scripting.loader import json_schema

    print(json.dumps(json_schema(), indent=2, ensure_ascii=False))
    return 0


def _serve(args: argparse.Namespace) -> int:
    gc.disable()  # until the server is up (_run): see _tune_gc
    try:
        return _start_and_serve(args)
    finally:
        gc.enable()


def _start_and_serve(args: argparse.Namespace) -> int:
    from mockpoeti.server import MockServer

    try:
        server = MockServer(
            host=args.host,
            port=args.port,
            seed=args.seed,
            scenarios=args.scenario,
            api_keys=args.api_key,
            fixtures=args.fixtures,
            clock=args.clock,
            history=args.history,
            admin_token=args.admin_token,
            max_traces=args.max_traces,
            max_journal=args.max_journal,
            max_keys_per_account=args.max_keys,
            header_timeout_s=args.header_timeout,
            keepalive_timeout_s=args.keepalive_timeout,
            body_timeout_s=args.body_timeout,
            max_sessions=args.max_sessions,
            session_ttl_s=args.session_ttl,
        )
    except ValueError as e:  # the flags were checked as Settings checks them: not expected, but one line if so
        print(f"mockpoeti: {e}", file=sys.stderr)
        return 2
    return run_until_stopped(_run(server), args.host, args.port)


def run_until_stopped(main: Coroutine[Any, Any, None], host: str, port: int) -> int:
    """Run a server until a signal stops it: 0; or 1, with one line, for a file it refused
    or an address it cannot listen on."""
    from mockpoeti.base.errors import ConfigError

    try:
        asyncio.run(main)
    except ConfigError as e:
        print("\n".join(e.problems), file=sys.stderr)
        return 1
    except OSError as e:
        print(f"mockpoeti: cannot listen on {host}:{port}: {e.strerror or e}", file=sys.stderr)
        return 1
    return 0


async def _run(server) -> None:
    from mockpoeti.http.edge import limit_accept_errors

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    limit_accept_errors(loop)
    await server.start()
    _tune_gc()
    gc.enable()
    if not _is_loopback(server.host):
        print(f"mockpoeti: warning: listening on {server.host}, reachable beyond this machine", file=sys.stderr)
    if _native.stale_build:  # an edited checkout: its Python runs, not the build it has
        print(f"mockpoeti: running as plain Python: {_native.stale_build}", file=sys.stderr)
    print(f"mockpoeti listening on {server.url} (API key: {server.api_key})", flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()


def _tune_gc() -> None:
    """A process of our own, so its garbage collector is ours to set. What is
    loaded by now (code, catalog) lives as long as the process: frozen, no
    collection walks it again. Start-up runs with the collector off (`_serve`)
    and ends without a collection: the ~90 collections an import of this size
    triggers, and a full one before freezing, found nothing to free (0
    unreachable objects) for ~20 ms of a ~250 ms start. And a collection of
    young objects runs per 20,000 allocations, not 700, because every full one
    walks all the traces and open streams. What this buys is measured, not
    assumed: benchmarks/pacing.py runs its 500-stream load against a server
    started without this call too (`pacing.heavy_untuned_gc`, against the tuned
    server's p99 lateness)."""
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
