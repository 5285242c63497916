"""`mdfd probe`: talk to one instrument directly — the engineer's bring-up tool for any driver.

    mdfd probe --config C INSTRUMENT [CHANNEL ...] [--write CHANNEL=VALUE ...] [--json]
    mdfd probe --config C INSTRUMENT --browse [NODE] [--json]

Connects through the instrument's configured driver (no daemon, no simulator), applies the
writes in order (configured limits apply), then identifies the instrument and reads the channels
(all of them when none are named). Exit 2: bad instrument, channel or value — checked before
anything is sent. Exit 1: the instrument is unreachable or failed.

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
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from mdfd.drivers import (
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

from .. import strictjson
from ..config import load_config

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


class ProbeInputError(Exception):
    """A bad name or value on the command line: nothing was sent."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "probe",
        help="connect to one instrument, identify it, write and read channels",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("instrument")
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
        if args.browse is not None and not hasattr(driver_class(instrument.driver), "browse"):
            raise ProbeInputError(f"driver {instrument.driver!r} cannot browse")
    except (ProbeInputError, ChannelError) as exc:
        print(f"mdfd probe: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.browse is not None:
        operation = _browse(args.instrument, instrument, args.browse or None)
    else:
        operation = _probe(args.instrument, instrument, channels, writes)
    try:
        result = asyncio.run(asyncio.wait_for(operation, timeout=args.timeout))
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
    if args.browse is not None:
        _print_browse(args.instrument, args.browse or "Objects", result, as_json=args.json)
        return 0
    identity, readings = result
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


async def _browse(name: str, instrument: InstrumentConfig, node: str | None) -> list[Any]:
    async with _connected(name, instrument) as driver:
        return list(await driver.browse(node))  # type: ignore[attr-defined]


def _print_browse(name: str, node: str, entries: list[Any], *, as_json: bool) -> None:
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
