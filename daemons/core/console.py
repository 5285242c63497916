"""The rich Console every command prints through: fitted to a terminal, never wrapped in a pipe.

rich wraps at 80 columns when stdout is not a terminal, so a path or a run id piped into a file,
`grep` or another program arrived broken by hard newlines. Off a terminal the console is as wide
as any line needs. Lines always soft-wrap (the terminal folds them, no newline is inserted, a
copied path stays whole); on a terminal tables fold long cells but a run id column is never cut
(see `run_id_column`).
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console
from rich.table import Table

# Wide enough for any line a command prints; rich pads nothing to it (tables are not expanded).
UNWRAPPED_WIDTH = 100_000


def output_console(*, stderr: bool = False) -> Console:
    console = Console(stderr=stderr, soft_wrap=True)
    if console.is_terminal:
        return console
    return Console(stderr=stderr, soft_wrap=True, width=UNWRAPPED_WIDTH)


def run_id_column(table: Table, ids: Iterable[str], header: str = "run") -> None:
    """A column whose ids are always whole: the operator copies them into export/plot/resume."""
    width = max((len(i) for i in ids), default=len(header))
    table.add_column(header, no_wrap=True, min_width=width)
