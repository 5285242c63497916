"""`mdfd probe`: talk to one instrument directly — the engineer's bring-up tool for any driver.

    mdfd probe --config C INSTRUMENT [CHANNEL ...] [--write CHANNEL=VALUE ...] [--json]
    mdfd probe --config C INSTRUMENT --browse [NODE] [--json]

Connects through the instrument's configured driver (no daemon, no simulator), applies the
writes in order (configured limits apply), then identifies the instrument and reads the channels
(all of them when none are named). Exit 2: bad instrument, channel or value — checked before
anything is sent — or `--write` while another process (a daemon, `mdfd run`) holds the MDF's
state directory: a setpoint written mid-run would fight the recipe. Reads need no lock.
Exit 1: the instrument is unreachable or failed.

`--browse` (drivers that can browse, e.g. opcua) lists the variables under NODE (default: the
server's Objects folder) with node ids, data types, units and values, so an engineer can write
the channel map of a new server.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from rich.console import Console
from rich.table import Table

from mdfd.daemons.core import strictjson
from mdfd.daemons.core.config import load_config
from mdfd.daemons.store.lock import StateLock
from mdfd.drivers import (
    Browsable,
    BrowseEntry,
    ChannelError,
    Driver,
    DriverContext,
    InstrumentConfig,
    InstrumentError,
    Reading,
    Value,
    check_writable,
    driver_class,
)
from mdfd.recipes.located import InputError

from . import add_command, add_config

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


class ProbeInputError(Exception):
    """A bad name or value on the command line: nothing was sent."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command(
        sub,
        "probe",
        "connect to one instrument, identify it, write and read channels",
        "mdfd probe --config config/sim.yaml furnace temperature",
        details=__doc__ or "",
    )
    add_config(parser)
    parser.add_argument("instrument", help="the instrument's name in the config")
    parser.add_argument("channels", nargs="*", metavar="CHANNEL", help="default: all channels")
    parser.add_argument(
        "--write",
        action="append",
        default=[],
        metavar="CHANNEL=VALUE",
        help="write before reading (repeatable; true/false, integers and decimals are typed)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    parser.add_argument(
        "--browse",
        nargs="?",
        const="",
        default=None,
        metavar="NODE",
        help="list the variables under NODE (default: Objects) instead of reading channels",
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="give up after this many seconds (default 30)"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    config = load_config(args.config).model
    try:
        instrument = config.instruments.get(args.instrument)
        if instrument is None:
            known = ", ".join(sorted(config.instruments))
            raise ProbeInputError(f"no instrument {args.instrument!r} in {args.config} ({known})")
        channels = _channels(args.instrument, instrument, args.channels)
        writes = [_parse_write(args.instrument, instrument, text) for text in args.write]
        if args.browse is not None and not _can_browse(instrument.driver):
            raise ProbeInputError(f"driver {instrument.driver!r} cannot browse")
    except (ProbeInputError, ChannelError) as exc:
        print(f"mdfd probe: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    lock = StateLock(config.storage.state_dir)
    if writes and not _locked(lock):
        return EXIT_BAD_INPUT
    try:
        return _run(args, instrument, channels, writes)
    finally:
        lock.release()


def _locked(lock: StateLock) -> bool:
    """Writes only with the MDF's lock, held for the whole probe: no daemon can start driving
    the MDF between the check and the write. Refused (and said why) when it cannot be taken."""
    try:
        lock.acquire()
    except InputError as exc:
        for problem in exc.problems:
            print(f"mdfd probe: --write refused: {problem}", file=sys.stderr)
        return False
    except OSError as exc:
        print(
            f"mdfd probe: --write refused: cannot check whether another process holds this MDF"
            f" ({lock.path}): {exc}",
            file=sys.stderr,
        )
        return False
    return True


def _run(
    args: argparse.Namespace,
    instrument: InstrumentConfig,
    channels: list[str],
    writes: list[tuple[str, Value]],
) -> int:
    try:
        if args.browse is not None:
            entries = asyncio.run(
                asyncio.wait_for(
                    _browse(args.instrument, instrument, args.browse or None),
                    timeout=args.timeout,
                )
            )
            _print_browse(args.instrument, args.browse or "Objects", entries, as_json=args.json)
            return 0
        identity, readings = asyncio.run(
            asyncio.wait_for(
                _probe(args.instrument, instrument, channels, writes), timeout=args.timeout
            )
        )
    except ChannelError as exc:
        print(f"mdfd probe: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except InstrumentError as exc:
        print(
            f"mdfd probe: instrument {args.instrument!r} unreachable or failing: {exc}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except TimeoutError:
        print(
            f"mdfd probe: instrument {args.instrument!r} did not complete within {args.timeout}s",
            file=sys.stderr,
        )
        return EXIT_FAILED
    if args.json:
        print(strictjson.dumps(_as_json(args.instrument, identity, readings)))
    else:
        _print_table(args.instrument, identity, readings)
    return 0


def _channels(name: str, instrument: InstrumentConfig, requested: Sequence[str]) -> list[str]:
    unknown = [channel for channel in requested if channel not in instrument.channels]
    if unknown:
        known = ", ".join(instrument.channels)
        raise ProbeInputError(f"instrument {name!r} has no channel {unknown[0]!r} ({known})")
    return list(requested) or list(instrument.channels)


def _parse_write(name: str, instrument: InstrumentConfig, text: str) -> tuple[str, Value]:
    channel, sep, raw = text.partition("=")
    if not sep or not channel:
        raise ProbeInputError(f"--write {text!r}: expected CHANNEL=VALUE")
    config = instrument.channels.get(channel)
    if config is None:
        raise ProbeInputError(f"instrument {name!r} has no channel {channel!r}")
    value = _typed(raw)
    check_writable(name, channel, config, value)
    return channel, value


def _typed(raw: str) -> Value:
    lowered = raw.strip().lower()
    if lowered in ("true", "on"):
        return True
    if lowered in ("false", "off"):
        return False
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            continue
    return raw


def _can_browse(driver: str) -> bool:
    """Known before connecting: the driver class implements the `Browsable` capability."""
    factory = driver_class(driver)
    return isinstance(factory, type) and issubclass(factory, Browsable)


@asynccontextmanager
async def _connected(name: str, instrument: InstrumentConfig) -> AsyncIterator[Driver]:
    driver = driver_class(instrument.driver)(name, instrument, DriverContext(clock=time.time))
    await driver.connect()
    try:
        yield driver
    finally:
        await driver.close()


async def _probe(
    name: str,
    instrument: InstrumentConfig,
    channels: list[str],
    writes: list[tuple[str, Value]],
) -> tuple[str, dict[str, Reading]]:
    async with _connected(name, instrument) as driver:
        for channel, value in writes:
            await driver.write(channel, value)
        identity = await driver.identify()
        readings = await driver.read(channels)
    return identity, {channel: readings[channel] for channel in channels}


async def _browse(name: str, instrument: InstrumentConfig, node: str | None) -> list[BrowseEntry]:
    async with _connected(name, instrument) as driver:
        if not isinstance(driver, Browsable):
            raise ProbeInputError(f"driver {instrument.driver!r} cannot browse")
        return list(await driver.browse(node))


def _print_browse(name: str, node: str, entries: list[BrowseEntry], *, as_json: bool) -> None:
    rows = [dataclasses.asdict(entry) for entry in entries]
    if as_json:
        print(strictjson.dumps({"instrument": name, "node": node, "variables": rows}))
        return
    table = Table(title=f"{name}: variables under {node}", title_justify="left")
    for column in ("path", "node", "type", "value", "unit", "access"):
        table.add_column(column, justify="right" if column == "value" else "left")
    for row in rows:
        value = row["value"]
        if row["status"] != "Good":
            text = row["status"]
        elif isinstance(value, float):
            text = f"{value:.6g}"
        else:
            text = "" if value is None else str(value)
        access = "rw" if row["writable"] else "r"
        table.add_row(row["path"], row["node"], row["data_type"], text, row["unit"], access)
    console = Console(soft_wrap=True)
    if not console.is_terminal:
        console.width = 240  # node ids are long; a pipe or file gets them whole
    console.print(table)


def _as_json(name: str, identity: str, readings: dict[str, Reading]) -> dict[str, Any]:
    return {
        "instrument": name,
        "identity": identity,
        "channels": {
            channel: {
                "value": reading.value,
                "unit": reading.unit,
                "quality": str(reading.quality),
                "timestamp": reading.timestamp,
            }
            for channel, reading in readings.items()
        },
    }


def _print_table(name: str, identity: str, readings: dict[str, Reading]) -> None:
    table = Table(title=f"{name}: {identity}", title_justify="left")
    table.add_column("channel")
    table.add_column("value", justify="right")
    table.add_column("unit")
    table.add_column("quality")
    for channel, reading in readings.items():
        value = reading.value
        text = f"{value:.6g}" if isinstance(value, float) else str(value)
        table.add_row(channel, text, reading.unit, str(reading.quality))
    Console(soft_wrap=True).print(table)
