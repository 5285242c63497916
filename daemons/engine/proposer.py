"""Who chooses a campaign's next point: the `Proposer` seam and its Optuna (TPE) implementation.

A proposer is a pure function of (the recipe's seed, the trial number, the history so far): it
holds no state between calls. Each call rebuilds the optimiser from the recorded trials and
seeds its sampler from the seed and the trial number. That is what makes a campaign survive a
`kill -9`: the history is in the state database, so a resumed campaign asks with exactly the
history, and therefore gets exactly the point, an uninterrupted one would have (decision 0078).
Rebuilding costs a few milliseconds at a hundred trials, nothing beside a furnace's hours.

Optuna is imported on first use: `mdfd --help`, `validate` and `plan` never pay for it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any, Literal, Protocol

from mdfd.daemons.store.campaign import TrialRecord
from mdfd.recipes.adaptive import AdaptiveSweep, SearchParameter
from mdfd.recipes.sweeps import Point

TrialState = Literal["pending", "done", "failed", "rejected"]


@dataclass(frozen=True, slots=True)
class Trial:
    """One trial as the optimiser is told it: pending (proposed or running), done (with the
    objective values, in the recipe's order, and each constraint's violation, 0 when met),
    failed (the point measured nothing), or rejected (it broke an input constraint and never
    reached the hardware)."""

    number: int
    parameters: Point
    state: TrialState
    values: tuple[float, ...] = ()
    violations: dict[str, float] = field(default_factory=dict)

    @property
    def feasible(self) -> bool:
        return self.state == "done" and all(v <= 0 for v in self.violations.values())


class Proposer(Protocol):
    """The seam for optimisers: Optuna's TPE today, another library tomorrow."""

    name: str
    version: str

    def propose(self, number: int, history: Sequence[Trial]) -> Point:
        """Trial `number`'s parameters given every earlier trial; the same inputs give the
        same point, on any machine and after any restart."""
        ...


def visible_history(history: Sequence[Trial], number: int, batch_size: int) -> list[Trial]:
    """What trial `number` is proposed knowing: the results of every trial up to
    `number - batch_size`, the later ones as pending (they were proposed ahead, not yet
    measured, when an uninterrupted run asked). A pure function of the record, so a resumed
    run shows the optimiser the same history whatever had finished when it crashed."""
    horizon = number - batch_size
    shown = []
    for trial in history:
        if trial.number >= number:
            continue
        if trial.number > horizon and trial.state in ("done", "failed"):
            trial = Trial(trial.number, trial.parameters, "pending")
        shown.append(trial)
    return shown


def as_trial(record: TrialRecord) -> Trial:
    """A recorded trial as the optimiser is told it."""
    states: dict[str, TrialState] = {
        "proposed": "pending",
        "running": "pending",
        "done": "done",
        "failed": "failed",
        "rejected": "rejected",
        "dropped": "pending",  # proposed, never measured: the campaign had ended
    }
    return Trial(
        record.trial,
        record.parameters,
        states[record.status],
        record.objectives,
        dict(record.violations or {}),
    )


class TpeProposer:
    """Optuna's TPE through ask/tell, rebuilt from the history at every proposal."""

    name = "optuna-tpe"

    def __init__(self, sweep: AdaptiveSweep) -> None:
        self.sweep = sweep
        self.version = version("optuna")
        self._distributions: dict[str, Any] | None = None

    def propose(self, number: int, history: Sequence[Trial]) -> Point:
        optuna = _optuna()
        study = optuna.create_study(
            directions=[o.direction for o in self.sweep.objectives.values()],
            sampler=self._sampler(optuna, number),
        )
        distributions = self._space(optuna)
        for trial in history:
            study.add_trial(self._frozen(optuna, trial, distributions))
        asked = study.ask(distributions)
        return {name: float(value) for name, value in asked.params.items()}

    def _sampler(self, optuna: Any, number: int) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                seed=(self.sweep.seed * 1_000_003 + number) % 2**32,
                n_startup_trials=max(self.sweep.initial_design.samples, 1),
                # Optuna's default, independent TPE: on the MLCC ridge it needed a median of
                # 22 points where multivariate needed 41 (bench/adaptive.py, 20 seeds).
                multivariate=False,
                constant_liar=True,  # pending points steer the next ones away from them
            )

    def _space(self, optuna: Any) -> dict[str, Any]:
        if self._distributions is None:
            self._distributions = {
                name: _distribution(optuna, parameter)
                for name, parameter in self.sweep.parameters.items()
            }
        return self._distributions

    def _frozen(self, optuna: Any, trial: Trial, distributions: dict[str, Any]) -> Any:
        params = {
            name: _native(self.sweep.parameters[name], value)
            for name, value in trial.parameters.items()
        }
        state = optuna.trial.TrialState
        if trial.state == "pending":
            return optuna.trial.create_trial(
                state=state.RUNNING, params=params, distributions=distributions
            )
        if trial.state == "failed":
            return optuna.trial.create_trial(
                state=state.FAIL, params=params, distributions=distributions
            )
        values = list(trial.values)
        if trial.state == "rejected" or not all(math.isfinite(v) for v in values):
            # Never measured (or measured nothing usable): infeasible, so the values are not
            # compared; the violation says how far off it was.
            values = [0.0] * len(self.sweep.objectives)
        violations = dict(trial.violations) or {"measured": 0.0}
        if not all(math.isfinite(v) for v in violations.values()):
            violations = {k: 1e12 if not math.isfinite(v) else v for k, v in violations.items()}
        return optuna.trial.create_trial(
            values=values, params=params, distributions=distributions, constraints=violations
        )


def _distribution(optuna: Any, parameter: SearchParameter) -> Any:
    d = optuna.distributions
    if parameter.choices is not None:
        return d.CategoricalDistribution(sorted(set(parameter.choices)))
    assert parameter.low is not None
    assert parameter.high is not None
    if parameter.type == "int":
        return d.IntDistribution(
            int(parameter.low),
            int(parameter.high),
            log=parameter.log,
            step=int(parameter.step or 1),
        )
    return d.FloatDistribution(
        parameter.low, parameter.high, log=parameter.log, step=parameter.step
    )


def _native(parameter: SearchParameter, value: float) -> float | int:
    return round(value) if parameter.type == "int" else float(value)


def _optuna() -> Any:
    """Optuna, imported on first proposal and told to keep its per-trial INFO lines quiet."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def make_proposer(sweep: AdaptiveSweep) -> Proposer:
    return TpeProposer(sweep)
