"""SIGHUP: which parts of a re-read config may take effect now, and which must wait.

A reload is all or nothing: when any change is refused, the daemon keeps the config it runs
and says why in one log line per refusal, so the operator never wonders which half applied.
What applies takes effect between runs' points in this sense: runs started from now on use the
new config; the executing run keeps the instruments, safety and limits it started with (its
interlocks were checked against them), which is why instrument changes are refused outright
while a run executes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mdfd.daemons.core.config import MdfConfig


@dataclass
class Review:
    refused: list[str] = field(default_factory=list)
    applied: list[str] = field(default_factory=list)
    instruments_changed: bool = False
    upstream_changed: bool = False


def review(old: MdfConfig, new: MdfConfig, *, run_active: str | None, simulate: bool) -> Review:
    """Compare section by section; `run_active` is the executing run's id, if any."""
    result = Review()

    def changed(section: str) -> bool:
        return getattr(old, section) != getattr(new, section)

    if changed("mdf"):
        result.refused.append("mdf identity changed: this daemon's data belong to the old one")
    if changed("storage"):
        result.refused.append("storage paths changed: restart the daemon to move them")
    if changed("control"):
        result.refused.append("control listeners changed: restart the daemon to rebind them")
    if changed("web"):
        result.refused.append("operator page settings changed: restart the daemon to rebind it")
    if simulate and (changed("simulators") or changed("simulation")):
        result.refused.append("simulators changed under --simulate: restart to restart them")
    if changed("instruments"):
        result.instruments_changed = True
        if run_active is not None:
            result.refused.append(
                f"instruments changed while run {run_active} executes (it holds them, paused "
                "or not): reload again after it ends"
            )
        else:
            result.applied.append("instruments (health monitors restarted)")
    if changed("safety"):
        note = " from the next run; the executing run keeps its bounds" if run_active else ""
        result.applied.append(f"safety interlocks and safe state{note}")
    if changed("upstream"):
        result.upstream_changed = True
        result.applied.append("upstream publishers")
    if changed("vocabulary"):
        result.applied.append("vocabulary (for recipes submitted from now on)")
    if not simulate and (changed("simulators") or changed("simulation")):
        result.applied.append("simulation settings (for the engine clock of the next run)")
    return result
