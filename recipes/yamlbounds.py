"""Bounds on untrusted YAML, checked on the event stream before anything is built.

A 600-byte document of nested aliases expands to millions of nodes; a few thousand nested
brackets overflow Python's stack in the composer; one 20,000-character scalar makes unit
parsing crawl. Every YAML the project reads (recipes, MDF configs, the vocabulary, API bodies)
passes this scan first: libyaml's parser is a state machine, so the scan itself cannot recurse,
and it stops at the first bound crossed with the line and field where it happened.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

import yaml

Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
CONTROL = {chr(c) for c in range(32)} - {"\t", "\n", "\r"} | {"\x7f"}
PathKey = tuple[str | int, ...]


class Refused(Exception):
    """A bound crossed: where (line 1-based or None, field path) and why."""

    def __init__(self, line: int | None, path: PathKey, message: str) -> None:
        self.line = line
        self.path = path
        self.message = message
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class YamlLimits:
    """Generous for any real recipe, config or vocabulary; fixed, documented in the guides."""

    max_bytes: int = 1_048_576
    max_depth: int = 40
    max_aliases: int = 100
    max_nodes: int = 100_000  # after expanding aliases
    max_scalar_chars: int = 65_536


LIMITS = YamlLimits()


def read_bounded(path: Path | str, limits: YamlLimits = LIMITS) -> str:
    """A regular file's text, never more than `max_bytes`: /dev/zero or a FIFO is refused
    by its type, before it is opened (opening a FIFO would block)."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise Refused(None, (), "not a regular file")
        if info.st_size > limits.max_bytes:
            raise _too_big(limits)
        with open(path, "rb") as handle:
            raw = handle.read(limits.max_bytes + 1)
    except OSError as exc:
        raise Refused(None, (), f"cannot read: {exc.strerror}") from exc
    except ValueError as exc:  # a NUL in the path
        raise Refused(None, (), f"cannot read: {exc}") from exc
    if len(raw) > limits.max_bytes:
        raise _too_big(limits)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refused(None, (), f"not UTF-8 text: {exc}") from exc


def _too_big(limits: YamlLimits) -> Refused:
    return Refused(None, (), f"larger than {limits.max_bytes} bytes")


@dataclass(slots=True)
class _Frame:
    """An open collection, for the field path: a mapping reads a key, then its value; a
    sequence counts its items."""

    is_mapping: bool
    path: PathKey
    expecting_key: bool
    key: str = "?"
    index: int = 0


@dataclass(slots=True)
class _Open:
    """An open collection, for the bounds: its anchor, the nodes counted before it, its depth
    and the deepest depth inside it (an aliased collection expands to all of that)."""

    anchor: str | None
    start: int
    depth: int
    deepest: int


class _Scan:
    """Walks the events once: depth, aliases, expanded node count, scalar text. Field paths
    are only worked out for the message when a bound is crossed (this runs once per node)."""

    def __init__(self, limits: YamlLimits) -> None:
        self.limits = limits
        self.nodes = 0
        self.aliases = 0
        self.frames: list[_Frame] = []
        # Anchor -> (expanded nodes, height); an anchor still open is absent (recursive alias).
        self.anchors: dict[str, tuple[int, int]] = {}
        self.open: list[_Open] = []

    def fail(self, event: yaml.Event, message: str) -> Refused:
        line = event.start_mark.line + 1 if event.start_mark is not None else None
        return Refused(line, self.path(), message)

    def path(self) -> PathKey:
        if not self.frames:
            return ()
        frame = self.frames[-1]
        if not frame.is_mapping:
            return (*frame.path, frame.index)
        return frame.path if frame.expecting_key else (*frame.path, frame.key)

    def done(self, key: object = None) -> None:
        """A node finished: advance the parent (next index, or key <-> value)."""
        if not self.frames:
            return
        frame = self.frames[-1]
        if frame.is_mapping:
            if frame.expecting_key:
                frame.key = key if isinstance(key, str) else "?"
            frame.expecting_key = not frame.expecting_key
        else:
            frame.index += 1

    def count(self, event: yaml.Event, size: int, height: int) -> None:
        self.nodes += size
        if self.nodes > self.limits.max_nodes:
            raise self.fail(event, f"more than {self.limits.max_nodes} nodes (aliases expanded)")
        depth = len(self.frames) + height
        if depth > self.limits.max_depth:
            raise self.fail(event, f"nested deeper than {self.limits.max_depth} levels")
        if self.open and depth > self.open[-1].deepest:
            self.open[-1].deepest = depth

    def event(self, event: yaml.Event) -> None:
        # `type() is`, not isinstance: this runs once per node, and no event class used here
        # has a subclass.
        if type(event) is yaml.ScalarEvent:
            value = event.value
            if len(value) > self.limits.max_scalar_chars:
                limit = self.limits.max_scalar_chars
                raise self.fail(event, f"text longer than {limit} characters")
            if not CONTROL.isdisjoint(value):
                raise self.fail(event, "contains a control character (NUL, ESC, ...)")
            self.count(event, 1, 1)
            if event.anchor is not None:
                self.anchors[event.anchor] = (1, 1)
            self.done(value)
        elif type(event) is yaml.AliasEvent:
            self.aliases += 1
            if self.aliases > self.limits.max_aliases:
                raise self.fail(event, f"more than {self.limits.max_aliases} aliases")
            known = self.anchors.get(event.anchor or "")
            if known is None:
                raise self.fail(event, f"alias *{event.anchor} refers to itself")
            self.count(event, *known)
            self.done()
        elif isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            self.count(event, 1, 1)
            depth = len(self.frames) + 1
            self.open.append(_Open(event.anchor, self.nodes - 1, depth, depth))
            mapping = isinstance(event, yaml.MappingStartEvent)
            self.frames.append(_Frame(mapping, self.path(), expecting_key=mapping))
        elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            self.frames.pop()
            closed = self.open.pop()
            if closed.anchor is not None:
                height = closed.deepest - closed.depth + 1
                self.anchors[closed.anchor] = (self.nodes - closed.start, height)
            if self.open and closed.deepest > self.open[-1].deepest:
                self.open[-1].deepest = closed.deepest
            self.done()


def check_bounds(text: str, limits: YamlLimits = LIMITS) -> None:
    """Raise Refused at the first bound `text` crosses; YAML syntax errors are left to the
    composer, which reports them with their line."""
    if len(text) > limits.max_bytes or len(text.encode("utf-8")) > limits.max_bytes:
        raise _too_big(limits)
    scan = _Scan(limits)
    try:
        for event in yaml.parse(text, Loader=Loader):
            scan.event(event)
    except yaml.MarkedYAMLError as exc:
        # libyaml refuses deep flow nesting ([[[[…) itself, while scanning ahead of our count.
        if "nesting depth" in str(exc.problem) and exc.problem_mark is not None:
            message = f"nested deeper than {limits.max_depth} levels"
            raise Refused(exc.problem_mark.line + 1, scan.path(), message) from None
    except yaml.YAMLError:
        return
