"""`mdfctl`: the operator's client of a running `mdfd serve`.

    mdfctl [--socket PATH | --config CONFIG | --url URL [--token-env NAME]] COMMAND

Where the daemon is: `--socket`, else the control socket named by `--config` (the MDF's config
file), else `$MDFD_SOCKET`, else the only `/run/mdfd/*/control.sock` on this host. `submit`
sends the recipe's text — the daemon never opens a path a client names.

Exit codes: 0 ok, 1 refused or failed (or the watched run did not complete), 2 bad input
(invalid recipe, unknown run), 4 daemon unreachable. Whatever goes wrong, an operator reads one
line, never a traceback (`errors.report`; `--debug` logs it).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from rich.console import Console
from rich.table import Table

from mdfd.daemons.core import strictjson
from mdfd.daemons.core.console import output_console, run_id_column
from mdfd.daemons.core.envvars import expand_env
from mdfd.daemons.core.errors import report
from mdfd.daemons.core.logging import configure
from mdfd.daemons.core.version import package_version
from mdfd.recipes.located import InputError, load_located
from mdfd.recipes.yamlbounds import Refused, read_bounded

from . import campaign as campaign_cli
from .client import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_OK,
    Client,
    CtlError,
    Target,
)
from .outboxview import print_outbox

RUNTIME_GLOB = "/run/mdfd"
EPILOG = """\
The connection flags and --json go before or after the command.
exit codes: 0 ok, 1 refused or failed (or the watched run did not complete),
            2 bad input (invalid recipe, unknown run), 4 daemon unreachable
example:
  mdfctl --config config/sim.yaml submit recipes/examples/metal-annealing.yaml --watch"""


def _connection_flags(parser: argparse.ArgumentParser, default: Any) -> None:
    """Where the daemon is, and how long to wait: accepted before and after the command.

    On a subcommand the defaults are SUPPRESS, so a flag given there overrides the one given
    before it, and one not given there leaves the top-level value alone.
    """

    def given(value: Any) -> Any:
        return argparse.SUPPRESS if default is argparse.SUPPRESS else value

    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--socket", type=Path, default=given(None), help="the daemon's control socket"
    )
    where.add_argument(
        "--config",
        type=Path,
        default=given(None),
        help="the MDF config (its control socket is used)",
    )
    where.add_argument(
        "--url", default=given(None), help="TCP control URL, e.g. http://mdf-host:8470"
    )
    parser.add_argument(
        "--token-env",
        default=given("MDFD_CONTROL_TOKEN"),
        metavar="NAME",
        help="environment variable holding the bearer token for --url",
    )
    parser.add_argument(
        "--timeout", type=float, default=given(30.0), help="seconds per request (default 30)"
    )
    parser.add_argument(
        "--json", action="store_true", default=given(False), help="machine-readable output"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mdfctl",
        description="Operate a running mdfd daemon.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mdfctl {package_version()}")
    parser.add_argument("--debug", action="store_true", help="log at debug level, tracebacks too")
    _connection_flags(parser, None)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str, example: str) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            epilog=f"example:\n  {example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _connection_flags(p, argparse.SUPPRESS)
        return p

    command("status", "the MDF, its instruments, the current run and the queue", "mdfctl status")
    p = command(
        "submit",
        "queue a recipe (its text is sent; the daemon validates it)",
        "mdfctl submit recipes/examples/metal-annealing.yaml --watch",
    )
    p.add_argument("recipe", type=Path, help="the recipe file (YAML)")
    p.add_argument("--watch", action="store_true", help="then watch the run until it ends")
    p = command("runs", "every run this MDF knows", "mdfctl runs --status completed")
    p.add_argument("--status", help="only runs with this status (queued, running, completed...)")
    p = command("show", "one run: status, files, points and their summaries", "mdfctl show RUN_ID")
    p.add_argument("run", metavar="RUN_ID", help="the run's id (as `mdfctl runs` lists it)")
    p = command(
        "watch",
        "follow a run live until it ends; exit 0 if it completed",
        "mdfctl watch            # the executing run, else the next queued one",
    )
    p.add_argument("run", nargs="?", metavar="RUN_ID", help="default: the executing or next run")
    for name, verb in (
        ("pause", "pause at the next step"),
        ("resume", "resume a paused run, or release a held one"),
    ):
        p = command(name, f"{verb} (default: the executing run)", f"mdfctl {name}")
        p.add_argument("run", nargs="?", metavar="RUN_ID", help="default: the executing run")
    p = command(
        "abort",
        "abort the executing run (safe state applied), or a queued one by its id",
        'mdfctl abort --reason "wrong batch"',
    )
    p.add_argument(
        "run",
        nargs="?",
        metavar="RUN_ID",
        help="default: the executing run only — never one that started after your last abort",
    )
    p.add_argument("--reason", default="aborted by operator", help="stored as the run's message")
    p = command(
        "campaign",
        "an adaptive run: best point or Pareto front; inject a person's point; stop early",
        "mdfctl campaign inject --set temperature=1250 --set dwell=90",
    )
    campaign_cli.add_arguments(p)
    command("queue", "the waiting runs, in execution order", "mdfctl queue")
    p = command(
        "reorder",
        "move queued runs to the head of the queue, in the order given",
        "mdfctl reorder RUN_B RUN_A",
    )
    p.add_argument("runs", nargs="+", metavar="RUN_ID", help="queued runs, first to run first")
    p = command("drop", "remove a queued run that has not started", "mdfctl drop RUN_ID")
    p.add_argument("run", metavar="RUN_ID", help="a queued run")
    command("metrics", "the Prometheus metrics, as text (--json does not apply)", "mdfctl metrics")
    p = command(
        "outbox",
        "upstream outbox: depth per publisher, dead letters; or retry them",
        "mdfctl outbox retry --publisher spool",
    )
    p.add_argument(
        "action", nargs="?", choices=["status", "retry"], default="status", help="default: status"
    )
    p.add_argument("--publisher", help="retry: only this publisher's dead letters")
    return parser


def resolve_target(args: argparse.Namespace) -> Target:
    if args.url:
        url = urlsplit(args.url)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise CtlError(EXIT_BAD_INPUT, f"--url {args.url!r}: expected http(s)://host:port")
        token = os.environ.get(args.token_env)
        if not token:
            raise CtlError(
                EXIT_BAD_INPUT,
                f"--url needs a token: environment variable {args.token_env} is unset",
            )
        return Target(url=args.url, token=token)
    if args.socket:
        return Target(socket=args.socket)
    if args.config:
        return Target(socket=socket_from_config(args.config))
    if os.environ.get("MDFD_SOCKET"):
        return Target(socket=Path(os.environ["MDFD_SOCKET"]))
    found = sorted(Path(RUNTIME_GLOB).glob("*/control.sock"))
    if len(found) == 1:
        return Target(socket=found[0])
    tried = ", ".join(map(str, found)) or f"nothing under {RUNTIME_GLOB}"
    raise CtlError(EXIT_BAD_INPUT, f"which daemon? give --socket or --config (found: {tried})")


def socket_from_config(path: Path) -> Path:
    """The control socket a config names, read without validating the whole config.

    Full validation imports every driver and unit registry (seconds); an operator's client
    only needs `storage`, with the same `${VAR:-default}` expansion the daemon applies.
    """
    try:
        storage = load_located(path).data["storage"]
        directory = storage.get("runtime_dir") or storage["state_dir"]
    except InputError as exc:
        raise CtlError(EXIT_BAD_INPUT, str(exc)) from None
    except (KeyError, TypeError, AttributeError) as exc:
        raise CtlError(
            EXIT_BAD_INPUT, f"{path}: cannot find storage.runtime_dir or state_dir: {exc}"
        ) from None

    return Path(expand_env(str(directory))) / "control.sock"


def _print_json(data: Any) -> None:
    """One line per document: `submit --json --watch` then reads as NDJSON throughout."""
    print(strictjson.dumps(data, default=str), flush=True)


def _time(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return dt.datetime.fromtimestamp(stamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _runs_table(title: str, runs: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    run_id_column(table, (run["id"] for run in runs))
    for column in ("recipe", "status", "points", "created"):
        table.add_column(column, overflow="fold")
    for run in runs:
        table.add_row(
            run["id"],
            f"{run.get('recipe', run.get('recipe_name'))} "
            f"{run.get('version', run.get('recipe_version', ''))}",
            run["status"],
            f"{run['points_done']}/{run['points_total']}",
            _time(run.get("created_at")),
        )
    return table


def _show_status(data: dict[str, Any], console: Console) -> None:
    mdf = data["mdf"]
    daemon = data["daemon"]
    domains = ", ".join(mdf.get("domains") or [mdf["domain"]])  # `domain:` is the 1-domain form
    console.print(
        f"[bold]{mdf['id']}[/bold] ({domains}; {mdf['site']}) — daemon pid "
        f"{daemon['pid']}, {daemon['version']}: {daemon['status']}"
    )
    table = Table(title="instruments")
    for column in ("instrument", "driver", "state", "identity / error", "errors"):
        table.add_column(column, overflow="fold")
    colours = {"ok": "green", "in_run": "cyan", "connecting": "yellow"}
    for name, health in data["instruments"].items():
        colour = colours.get(health["state"], "red")
        table.add_row(
            name,
            health["driver"],
            f"[{colour}]{health['state']}[/{colour}]",
            health["error"] or health["identity"],
            str(health["errors"]),
        )
    console.print(table)
    current = data["current"]
    if current:
        point = current["point"] if current["point"] is not None else "-"
        params = " ".join(f"{k}={v:g}" for k, v in current["parameters"].items())
        console.print(
            f"current: {current['id']} ({current['state']}) point {point}, "
            f"{current['points_done']}/{current['points_total']} done {params}",
            highlight=False,
        )
        for alarm in current.get("interlocks_unverified", []):
            console.print(
                f"[bold red]interlock unverified:[/bold red] {alarm['channel']} not read for"
                f" {alarm['seconds']} s ({alarm['error']})",
                highlight=False,
            )
    else:
        console.print("current: none")
    if data["queue"]:
        console.print(_runs_table("queue", data["queue"]))
    else:
        console.print("queue: empty")
    if data.get("held"):
        title = "held: `mdfctl resume RUN` continues it, `mdfctl abort RUN` ends it"
        console.print(_runs_table(title, data["held"]))


def _show_run(run: dict[str, Any], console: Console) -> None:
    console.print(
        f"[bold]{run['id']}[/bold]: {run['recipe_name']} {run['recipe_version']} — "
        f"{run['status']}, {run['points_done']}/{run['points_total']} points",
        highlight=False,
    )
    if run.get("message"):
        console.print(f"message: {run['message']}", highlight=False)
    console.print(f"started {_time(run['started_at'])}, ended {_time(run['ended_at'])}")
    for file in run["files"]:
        size = f"{file['bytes']} bytes" if file["exists"] else "not written yet"
        console.print(f"{file['kind']}: {file['path']} ({size})", highlight=False, markup=False)
    if run["points"]:
        table = Table(title="points")
        for column in ("point", "status", "parameters", "summary (mean)"):
            table.add_column(column, overflow="fold")
        for point in run["points"]:
            means = " ".join(
                f"{k}={v['mean']:.5g}"
                for k, v in point["summary"].items()
                if v.get("mean") is not None
            )
            table.add_row(
                str(point["index"]),
                point["status"],
                " ".join(f"{k}={v:g}" for k, v in point["parameters"].items()),
                means,
            )
        console.print(table)


def _watcher() -> Callable[[Client, str | None, bool], Awaitable[int]]:
    """`ctlwatch`, imported by the commands that watch: it decodes the daemon's typed events
    with the engine's models, which `mdfctl status` and the rest never need (ADR 0076).
    `submit --watch` imports it before submitting, so the stream opens as soon as the run is
    queued, not an import later."""
    from .watch import watch

    return watch


async def _dispatch(args: argparse.Namespace, client: Client) -> int:
    console = output_console()
    as_json = args.json
    command = args.command

    def show(data: Any, human: Any) -> None:
        if as_json:
            _print_json(data)
        else:
            human()

    if command == "status":
        data = await client.request("GET", "/status")
        show(data, lambda: _show_status(data, console))
    elif command == "submit":
        watch = _watcher() if args.watch else None
        try:
            text = read_bounded(args.recipe)
        except Refused as exc:
            raise CtlError(EXIT_BAD_INPUT, f"cannot read {args.recipe}: {exc.message}") from None
        run = await client.request(
            "POST", "/runs", data=text.encode(), headers={"X-Recipe-Name": str(args.recipe)}
        )
        if as_json:
            _print_json(run)
        else:
            console.print(f"queued {run['id']} ({run['points_total']} points)", highlight=False)
        for warning in run.get("warnings", []):
            print(f"mdfctl: warning: {warning}", file=sys.stderr)
        if watch is not None:
            return await watch(client, run["id"], as_json)
    elif command == "runs":
        query = f"?status={args.status}" if args.status else ""
        runs = await client.request("GET", f"/runs{query}")
        show(runs, lambda: console.print(_runs_table("runs", runs)))
    elif command == "show":
        run = await client.request("GET", f"/runs/{quote(args.run)}")
        show(run, lambda: _show_run(run, console))
    elif command == "watch":
        return await _watcher()(client, args.run, as_json)
    elif command in ("pause", "resume", "abort"):
        target = args.run or "current"
        query = f"?reason={quote(args.reason)}" if command == "abort" else ""
        reply = await client.request("POST", f"/runs/{quote(target)}/{command}{query}")
        show(reply, lambda: console.print(f"{command}: {next(iter(reply.values()))}"))
    elif command == "campaign":
        reply = await campaign_cli.dispatch(args, client)
        show(reply, lambda: campaign_cli.show(args.action, reply, console))
    elif command == "queue":
        runs = await client.request("GET", "/queue")
        show(runs, lambda: console.print(_runs_table("queue", runs)))
    elif command == "reorder":
        reply = await client.request("POST", "/queue", json_body={"order": args.runs})
        show(reply, lambda: console.print("queue: " + " ".join(reply["queue"])))
    elif command == "drop":
        reply = await client.request("DELETE", f"/runs/{quote(args.run)}")
        show(reply, lambda: console.print(f"dropped {reply['dropped']}"))
    elif command == "metrics":
        sys.stdout.write(await client.request("GET", "/metrics"))
    elif command == "outbox" and args.action == "retry":
        query = f"?publisher={quote(args.publisher)}" if args.publisher else ""
        reply = await client.request("POST", f"/outbox/retry{query}")
        show(reply, lambda: console.print(f"re-queued {reply['requeued']} dead letter(s)"))
    elif command == "outbox":
        report = await client.request("GET", "/outbox")
        print_outbox(report, as_json)
    return EXIT_OK


async def _main(args: argparse.Namespace) -> int:
    async with Client(resolve_target(args), timeout=args.timeout) as client:
        return await _dispatch(args, client)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure("debug" if args.debug else None)
    try:
        return asyncio.run(_main(args))
    except CtlError as exc:
        print(f"mdfctl: {exc}", file=sys.stderr)
        for detail in exc.details:
            print(detail, file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return EXIT_FAILED
    except BrokenPipeError:
        # The reader left (`| head`): not an error worth a traceback; keep exit quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except Exception as exc:
        # What the world can do to a client is a CtlError or the OS refusing; else a bug.
        report("mdfctl", exc, (OSError,), debug_hint="--debug")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
