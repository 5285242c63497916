"""Malformed recipes and configs: each one must exit 2 and name the file, the line and the field.

An operator fixes what they can find. Every case below is a whole file with one mistake; the
table says on which line the mistake is, which field it is in and what the message must say.
Most cases run through `mdfd.daemons.cli.mdfd.main` in-process (fast); a handful run the real CLI as
a separate process to prove the exit code and stderr end to end.
"""

from __future__ import annotations

import functools
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdfd.daemons.analysis.planning import make_plan
from mdfd.daemons.analysis.validation import check
from mdfd.daemons.cli.mdfd import main
from mdfd.daemons.core.config import LoadedConfig, load_config
from mdfd.recipes.loader import load_recipe
from mdfd.recipes.located import InputError
from tests.support import EXAMPLES, SIM_CONFIG, mdfd

VOCABULARY = SIM_CONFIG.parent / "vocabulary.yaml"


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    line: int | None
    field: str
    message: str


def case(id: str, text: str, expect: tuple[int | None, str, str]) -> object:
    """A recipe and where its mistake is: (line, field, a fragment of the message)."""
    return pytest.param(Case(id, textwrap.dedent(text).lstrip("\n"), *expect), id=id)


# A valid recipe for config/sim.yaml, for reference (tests/foundation/test_examples.py proves
# the shape): every case below breaks exactly one thing of it.
VALID_RECIPE = """
recipe: {name: t, version: "1"}
sweep:
  parameters:
    temperature: {unit: degC, values: [100, 200]}
steps:
  - ramp: {channel: furnace.setpoint, to: temperature, rate: 5}
  - acquire: {channels: [meter.loss], rate: 1, count: 3}
record:
  properties:
    - {code: PRP_DISSIPATION_FACTOR, from: meter.loss}
"""

RECIPES = [
    case(
        "material-without-its-unit",
        """
        recipe: {name: t, version: "1"}
        materials:
          composition:
            - {code: CMP_CU, value: 99.9}
        sweep:
          parameters:
            temperature: {unit: degC, values: [200]}
        steps:
          - dwell: 1 min
        """,
        (4, "materials.composition[0]", "needs a unit"),
    ),
    case(
        "yaml-unclosed-flow-sequence",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200}
        steps:
          - dwell: 5
        """,
        (4, "(document)", "YAML syntax error"),
    ),
    case(
        "yaml-bad-indentation",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - dwell: 5
           - dwell: 6
        """,
        (7, "(document)", "YAML syntax error"),
    ),
    case(
        "yaml-tab-indentation",
        "recipe: {name: t, version: '1'}\nsweep:\n\tparameters: {}\n",
        (3, "(document)", "YAML syntax error"),
    ),
    case(
        "not-a-mapping",
        """
        - recipe
        - sweep
        """,
        (1, "(document)", "must be a mapping"),
    ),
    case(
        "wrong-type-linspace-num",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature:
              unit: degC
              linspace: {start: 100, stop: 200, num: three}
        steps:
          - dwell: 5
        """,
        (6, "sweep.parameters.temperature.linspace.num", "valid integer"),
    ),
    case(
        "wrong-type-tolerance",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - wait_until_stable:
              channel: furnace.temperature
              target: temperature
              tolerance: tight
              hold: 5 min
              timeout: 1 h
        """,
        (9, "steps[0].wait_until_stable.tolerance", "valid number"),
    ),
    case(
        "missing-version",
        """
        recipe:
          name: t
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - dwell: 5
        """,
        (1, "recipe.version", "Field required"),
    ),
    case(
        "unknown-key-top-level",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - dwell: 5
        recrod:
          process: []
        """,
        (7, "recrod", "unknown key"),
    ),
    case(
        "unknown-key-in-parameter",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature:
              unit: degC
              value: [100, 200]
        steps:
          - dwell: 5
        """,
        (6, "sweep.parameters.temperature.value", "unknown key"),
    ),
    case(
        "unknown-key-in-step",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - wait_until_stable:
              channel: furnace.temperature
              target: temperature
              tolerence: 2
              hold: 5 min
              timeout: 1 h
        """,
        (9, "steps[0].wait_until_stable.tolerence", "unknown key"),
    ),
    case(
        "unknown-key-in-record-item",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - acquire: {channels: [meter.loss], rate: 1, count: 3}
        record:
          properties:
            - code: PRP_DISSIPATION_FACTOR
              from: meter.loss
              statistic: mean
        """,
        (11, "record.properties[0].statistic", "unknown key"),
    ),
    case(
        "unknown-step-kind",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - dwell: 5
          - soak: 30 min
        """,
        (7, "steps[1]", "exactly one of: set, ramp"),
    ),
    case(
        "step-with-two-kinds",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - set: {furnace.setpoint: temperature}
            dwell: 5 min
        """,
        (6, "steps[0]", "exactly one of"),
    ),
    case(
        "unknown-channel",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - dwell: 5
          - ramp:
              channel: furnace.setpiont
              to: temperature
              rate: 5
        """,
        (8, "steps[1].ramp.channel", "has no channel 'setpiont'"),
    ),
    case(
        "unknown-instrument",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - set:
              oven.setpoint: temperature
        """,
        (7, "steps[0].set.oven.setpoint", "unknown instrument 'oven'"),
    ),
    case(
        "unknown-acquired-channel",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - acquire:
              channels:
                - meter.loss
                - meter.capacitanse
              rate: 1
              count: 3
        """,
        (9, "steps[0].acquire.channels[1]", "has no channel 'capacitanse'"),
    ),
    case(
        "write-to-read-only-channel",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - set:
              furnace.temperature: temperature
        """,
        (7, "steps[0].set.furnace.temperature", "not writable"),
    ),
    case(
        "beyond-limits-at-one-point",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [1200, 1300, 1450]}
        steps:
          - ramp:
              channel: furnace.setpoint
              to: temperature
              rate: 5
        """,
        (8, "steps[0].ramp.to", "point 2 (temperature=1450) writes 1450"),
    ),
    case(
        "beyond-limits-in-kelvin",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: K, linspace: {start: 1500, stop: 1700, num: 3}}
        steps:
          - set: {meter.specimen: 1}
          - set:
              furnace.setpoint: temperature
        """,
        (8, "steps[1].set.furnace.setpoint", "writes 1426.85 to 'furnace.setpoint'"),
    ),
    case(
        "beyond-limits-literal-quantity",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - set:
              furnace.setpoint: 2000 K
        """,
        (7, "steps[0].set.furnace.setpoint", "outside its limits [0.0, 1400.0]"),
    ),
    case(
        "beyond-limits-second-parameter",
        """
        recipe: {name: t, version: "1"}
        sweep:
          order: serpentine
          parameters:
            temperature: {unit: degC, values: [100, 200]}
            pressure: {unit: bar, range: {start: 10, stop: 60, step: 25}}
        steps:
          - set: {reactor.temperature_sp: temperature}
          - set: {reactor.pressure_sp: pressure}
        """,
        (9, "steps[1].set.reactor.pressure_sp", "(temperature=100, pressure=60) writes 60"),
    ),
    case(
        "unit-mismatch-written",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            pressure: {unit: bar, values: [10, 20]}
        steps:
          - ramp:
              channel: furnace.setpoint
              to: pressure
              rate: 5
        """,
        (8, "steps[0].ramp.to", "cannot convert 'bar' to 'degC'"),
    ),
    case(
        "unit-mismatch-ramp-rate",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - ramp:
              channel: furnace.setpoint
              to: temperature
              rate: 5 bar/min
        """,
        (9, "steps[0].ramp.rate", "cannot convert"),
    ),
    case(
        "unit-mismatch-stable-target",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - wait_until_stable:
              channel: furnace.temperature
              target: 5 bar
              tolerance: 1
              hold: 1 min
              timeout: 1 h
        """,
        (8, "steps[0].wait_until_stable.target", "cannot convert 'bar' to 'degC'"),
    ),
    case(
        "unit-mismatch-record",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - dwell: 5
        record:
          process:
            - {code: PRC_SINTER_DWELL, from: temperature}
        """,
        (
            9,
            "record.process[0].from",
            "'degC' is not compatible with PRC_SINTER_DWELL's unit 'min'",
        ),
    ),
    case(
        "unit-mismatch-material",
        """
        recipe: {name: t, version: "1"}
        materials:
          raw_materials:
            - {code: RM_CATALYST_MASS, value: 25, unit: mL}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - dwell: 5
        """,
        (4, "materials.raw_materials[0].unit", "not compatible with RM_CATALYST_MASS"),
    ),
    case(
        "unknown-unit",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature:
              unit: degCC
              values: [100, 200]
        steps:
          - dwell: 5
        """,
        (5, "sweep.parameters.temperature.unit", "unknown unit 'degCC'"),
    ),
    case(
        "unparseable-unit",
        """
        recipe: {name: t, version: "1"}
        materials:
          raw_materials:
            - {code: RM_CATALYST_MASS, value: 25, unit: "g/{"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - dwell: 5
        """,
        (4, "materials.raw_materials[0].unit", "unknown unit 'g/{'"),
    ),
    case(
        "material-outside-vocabulary-range",
        """
        recipe: {name: t, version: "1"}
        materials:
          composition:
            - {code: CMP_MGO, value: 1.3, unit: percent}
            - {code: CMP_DY2O3, value: 50, unit: percent}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - dwell: 5
        """,
        (5, "materials.composition[1].value", "outside CMP_DY2O3's range [0, 10]"),
    ),
    case(
        "unknown-vocabulary-code",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - acquire: {channels: [meter.loss], rate: 1, count: 3}
        record:
          properties:
            - {code: PRP_DISSIPATION_FACTOR, from: meter.loss}
            - {code: PRP_TAN_DELTA, from: meter.loss}
        """,
        (10, "record.properties[1].code", "'PRP_TAN_DELTA' is not in the vocabulary"),
    ),
    case(
        "wrong-category",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - acquire: {channels: [meter.capacitance], rate: 1, count: 3}
        record:
          process:
            - {code: PRP_CAPACITANCE, from: meter.capacitance}
        """,
        (9, "record.process[0].code", "belongs to properties, not process"),
    ),
    case(
        "record-from-unknown",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - acquire: {channels: [meter.loss], rate: 1, count: 3}
        record:
          properties:
            - code: PRP_CAPACITANCE
              from: meter.capacitance
        """,
        (10, "record.properties[0].from", "neither a sweep parameter nor an acquired channel"),
    ),
    case(
        "unknown-stat",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - acquire: {channels: [meter.loss], rate: 1, count: 3}
        record:
          properties:
            - code: PRP_DISSIPATION_FACTOR
              from: meter.loss
              stat: median
        """,
        (11, "record.properties[0].stat", "'mean', 'std', 'min', 'max' or 'last'"),
    ),
    case(
        "unknown-parameter-reference",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - wait_until_stable:
              channel: furnace.temperature
              target: temperatur
              tolerance: 1
              hold: 1 min
              timeout: 1 h
        """,
        (8, "steps[0].wait_until_stable.target", "unknown parameter 'temperatur'"),
    ),
    case(
        "empty-values",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature:
              unit: degC
              values: []
        steps:
          - dwell: 5
        """,
        (6, "sweep.parameters.temperature.values", "at least 1 item"),
    ),
    case(
        "empty-range",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature:
              unit: degC
              range: {start: 300, stop: 100, step: 50}
        steps:
          - dwell: 5
        """,
        (6, "sweep.parameters.temperature.range", "point from start towards stop"),
    ),
    case(
        "empty-parameters",
        """
        recipe: {name: t, version: "1"}
        sweep:
          mode: grid
          parameters: {}
        steps:
          - dwell: 5
        """,
        (4, "sweep.parameters", "at least 1 item"),
    ),
    case(
        "oversized-sweep",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, linspace: {start: 100, stop: 200, num: 400}}
            pressure: {unit: bar, linspace: {start: 1, stop: 50, num: 400}}
        steps:
          - dwell: 5
        """,
        (2, "sweep", "160000 points; this MDF allows 100000"),
    ),
    case(
        "duplicate-parameter",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
            temperature: {unit: degC, values: [300, 400]}
        steps:
          - dwell: 5
        """,
        (5, "sweep.parameters.temperature", "duplicate key"),
    ),
    case(
        "duplicate-top-level-key",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - dwell: 5
        steps:
          - dwell: 10
        """,
        (7, "steps", "duplicate key"),
    ),
    case(
        "duplicate-acquired-channel",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - acquire:
              channels: [meter.loss, meter.loss]
              rate: 1
              count: 3
        """,
        (6, "steps[0].acquire", "a channel is listed twice"),
    ),
    case(
        "bad-duration-unit",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - dwell: 5 min
          - dwell: 5 parsec
        """,
        (7, "steps[1].dwell", "cannot convert 'parsec' to 'second'"),
    ),
    case(
        "bad-duration-words",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - wait_until_stable:
              channel: furnace.temperature
              target: temperature
              tolerance: 1
              hold: five minutes
              timeout: 1 h
        """,
        (10, "steps[0].wait_until_stable.hold", "neither a duration"),
    ),
    case(
        "negative-duration",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - dwell: -5 min
        """,
        (6, "steps[0].dwell", "not a non-negative duration"),
    ),
    case(
        "negative-ramp-rate",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - ramp:
              channel: furnace.setpoint
              to: temperature
              rate: -5
        """,
        (9, "steps[0].ramp.rate", "rate must be positive"),
    ),
    case(
        "negative-ramp-rate-quantity",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - ramp:
              channel: furnace.setpoint
              to: temperature
              rate: -5 degC/min
        """,
        (9, "steps[0].ramp.rate", "ramp rate must be positive"),
    ),
    case(
        "negative-acquisition-rate",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - acquire:
              channels: [meter.loss]
              rate: -1
              count: 3
        """,
        (8, "steps[0].acquire.rate", "greater than 0"),
    ),
    case(
        "acquire-duration-and-count",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - dwell: 5
          - acquire: {channels: [meter.loss], rate: 1, count: 3, duration: 1 min}
        """,
        (7, "steps[1].acquire", "exactly one of duration or count"),
    ),
    case(
        "lhs-without-seed",
        """
        recipe: {name: t, version: "1"}
        sweep:
          mode: latin_hypercube
          samples: 8
          parameters:
            temperature: {unit: degC, between: [100, 200]}
        steps:
          - dwell: 5
        """,
        (2, "sweep", "latin_hypercube needs `samples` and `seed`"),
    ),
    case(
        "lhs-reversed-bounds",
        """
        recipe: {name: t, version: "1"}
        sweep:
          mode: latin_hypercube
          samples: 8
          seed: 1
          parameters:
            temperature: {unit: degC, between: [200, 100]}
        steps:
          - dwell: 5
        """,
        (7, "sweep.parameters.temperature", "low < high"),
    ),
    case(
        "zip-unequal-axes",
        """
        recipe: {name: t, version: "1"}
        sweep:
          mode: zip
          parameters:
            temperature: {unit: degC, values: [100, 200]}
            time: {unit: min, values: [10, 20, 30]}
        steps:
          - dwell: time
        """,
        (2, "sweep", "temperature has 2, time has 3"),
    ),
    case(
        "two-generators",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature:
              unit: degC
              values: [100, 200]
              linspace: {start: 100, stop: 200, num: 3}
        steps:
          - dwell: 5
        """,
        (4, "sweep.parameters.temperature", "(got values, linspace)"),
    ),
    case(
        "serpentine-on-zip",
        """
        recipe: {name: t, version: "1"}
        sweep:
          mode: zip
          order: serpentine
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - dwell: 5
        """,
        (2, "sweep", "serpentine order applies to grid sweeps"),
    ),
    case(
        "list-point-missing-parameter",
        """
        recipe: {name: t, version: "1"}
        sweep:
          mode: list
          parameters:
            temperature: {unit: degC}
            time: {unit: min}
          points:
            - {temperature: 100, time: 10}
            - {temperature: 200}
        steps:
          - dwell: time
        """,
        (2, "sweep", "points[1] sets ['temperature']"),
    ),
    case(
        "bad-recipe-name",
        """
        recipe:
          name: my recipe
          version: "1"
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - dwell: 5
        """,
        (2, "recipe.name", "should match pattern"),
    ),
    case(
        "bad-error-policy",
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 200]}
        steps:
          - dwell: 5
        on_error:
          retries: 2
          then: shrug
        """,
        (9, "on_error.then", "'fail_point' or 'stop_run'"),
    ),
]


# A valid MDF config for the cases below: every case breaks exactly one thing of it. Values
# that hold `${...}` are quoted, since YAML flow mappings cannot hold a bare `{`.
CONFIG = """
mdf: {id: test-mdf, domain: metal, site: KR-TEST}
storage:
  data_dir: /tmp/mdfd-test/data
  state_dir: /tmp/mdfd-test/state
vocabulary: VOCABULARY
instruments:
  furnace:
    driver: memory
    channels:
      temperature: {unit: degC, follows: setpoint, tau: 10}
      setpoint: {unit: degC, writable: true, limits: {min: 0, max: 1400}}
safety:
  interlocks:
    - {channel: furnace.temperature, above: 1450}
  safe_state: {furnace.setpoint: 25}
upstream:
  publishers:
    - {type: file, directory: /tmp/mdfd-test/spool}
"""

CONFIG_RECIPE = """
recipe: {name: t, version: "1"}
sweep:
  parameters:
    temperature: {unit: degC, values: [100, 200]}
steps:
  - ramp: {channel: furnace.setpoint, to: temperature, rate: 5}
  - acquire: {channels: [furnace.temperature], rate: 1, count: 3}
"""


def config_case(id: str, old: str, new: str, expect: tuple[int | None, str, str]) -> object:
    """CONFIG with one substring replaced: a single, visible mistake per case."""
    base = textwrap.dedent(CONFIG).lstrip("\n")
    assert old in base, old
    return pytest.param(Case(id, base.replace(old, new, 1), *expect), id=id)


CONFIGS = [
    config_case(
        "config-yaml-syntax",
        "  state_dir: /tmp/mdfd-test/state",
        "  state_dir: [/tmp/mdfd-test/state",
        (5, "(document)", "YAML syntax error"),
    ),
    config_case(
        "config-unknown-top-level-key",
        "upstream:",
        "upstrem:",
        (16, "upstrem", "unknown key"),
    ),
    config_case(
        "config-unknown-key-in-storage",
        "  state_dir:",
        "  statedir:",
        (4, "storage.statedir", "unknown key"),
    ),
    config_case(
        "config-unknown-key-in-instrument",
        "    driver: memory",
        "    driver: memory\n    adress: 10.0.0.5",
        (9, "instruments.furnace.adress", "unknown key"),
    ),
    config_case(
        "config-unknown-key-in-channel",
        "limits: {min: 0, max: 1400}",
        "limit: {min: 0, max: 1400}",
        (11, "instruments.furnace.channels.setpoint.limit", "unknown key"),
    ),
    config_case(
        "config-unknown-key-in-limits",
        "{min: 0, max: 1400}",
        "{min: 0, maximum: 1400}",
        (11, "instruments.furnace.channels.setpoint.limits.maximum", "unknown key"),
    ),
    config_case(
        "config-unknown-driver",
        "driver: memory",
        "driver: memroy",
        (8, "instruments.furnace.driver", "unknown driver 'memroy'"),
    ),
    config_case(
        "config-unknown-simulator-kind",
        "safety:",
        "simulators:\n  oven: {kind: kiln}\nsafety:",
        (13, "simulators.oven.kind", "unknown simulator kind 'kiln'"),
    ),
    config_case(
        "config-wrong-type",
        "writable: true",
        "writable: maybe",
        (11, "instruments.furnace.channels.setpoint.writable", "valid boolean"),
    ),
    config_case(
        "config-limits-reversed",
        "{min: 0, max: 1400}",
        "{min: 1400, max: 0}",
        (11, "instruments.furnace.channels.setpoint.limits", "min 1400.0 is above max 0.0"),
    ),
    config_case(
        "config-unknown-channel-unit",
        "temperature: {unit: degC,",
        "temperature: {unit: degCC,",
        (10, "instruments.furnace.channels.temperature.unit", "unknown unit 'degCC'"),
    ),
    config_case(
        "config-follows-unknown-channel",
        "follows: setpoint",
        "follows: setpiont",
        (7, "instruments.furnace", "follows unknown channel 'setpiont'"),
    ),
    config_case(
        "config-invalid-domain",
        "domain: metal",
        "domain: pharma",
        (1, "mdf.domain", "'chemistry', 'metal', 'ceramic' or 'textile'"),
    ),
    config_case(
        "config-two-domain-keys",
        "domain: metal,",
        "domain: metal, domains: [metal],",
        (1, "mdf", "not both"),
    ),
    config_case(
        "config-invalid-domains-item",
        "domain: metal,",
        "domains: [metal, pharma],",
        (1, "mdf.domains[1]", "'chemistry', 'metal', 'ceramic' or 'textile'"),
    ),
    config_case(
        "config-invalid-mdf-id",
        "id: test-mdf",
        "id: 'test mdf'",
        (1, "mdf.id", "should match pattern"),
    ),
    config_case(
        "config-missing-env-var",
        "  data_dir: /tmp/mdfd-test/data",
        "  data_dir: ${MDFD_TEST_SURELY_UNSET_VARIABLE}/data",
        (3, "storage.data_dir", "environment variable MDFD_TEST_SURELY_UNSET_VARIABLE is not set"),
    ),
    config_case(
        "config-interlock-unknown-channel",
        "{channel: furnace.temperature, above: 1450}",
        "{channel: furnace.temp, above: 1450}",
        (14, "safety.interlocks[0].channel", "unknown channel 'furnace.temp'"),
    ),
    config_case(
        "config-interlock-without-bound",
        "{channel: furnace.temperature, above: 1450}",
        "{channel: furnace.temperature, message: too hot}",
        (14, "safety.interlocks[0]", "needs `above` or `below`"),
    ),
    config_case(
        "config-safe-state-outside-limits",
        "{furnace.setpoint: 25}",
        "{furnace.setpoint: 1500}",
        (15, "safety.safe_state.furnace.setpoint", "outside the channel's limits"),
    ),
    config_case(
        "config-safe-state-read-only",
        "{furnace.setpoint: 25}",
        "{furnace.temperature: 25}",
        (15, "safety.safe_state.furnace.temperature", "not writable"),
    ),
    config_case(
        "config-safe-state-unknown-channel",
        "{furnace.setpoint: 25}",
        "{oven.setpoint: 25}",
        (15, "safety.safe_state.oven.setpoint", "unknown channel 'oven.setpoint'"),
    ),
    config_case(
        "config-duplicate-instrument",
        "safety:",
        "  furnace:\n    driver: memory\n    channels: {x: {}}\nsafety:",
        (12, "instruments.furnace", "duplicate key"),
    ),
    config_case(
        "config-unknown-publisher-type",
        "{type: file, directory: /tmp/mdfd-test/spool}",
        "{type: kafka, directory: /tmp/mdfd-test/spool}",
        (18, "upstream.publishers[0]", "'kafka'"),
    ),
    config_case(
        "config-no-instruments",
        "instruments:\n  furnace:",
        "instruments: {}\nunused:\n  furnace:",
        (6, "instruments", "at least one instrument"),
    ),
]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text.replace("VOCABULARY", str(VOCABULARY)), encoding="utf-8")
    return path


def run_in_process(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["validate", *argv])
    return code, capsys.readouterr().err


def assert_located(stderr: str, path: Path, c: Case) -> None:
    """Every line of stderr is a problem of this file; one is `file:line: field: message` for
    the case's mistake (a misspelt key may also leave a required one missing)."""
    where = f"{path}:{c.line}" if c.line is not None else str(path)
    lines = stderr.strip().splitlines()
    assert lines, "no problem reported"
    assert all(line.startswith(f"{path}") for line in lines), stderr
    matching = [
        line
        for line in lines
        if line.startswith(f"{where}: {c.field}: ") and c.message in line.split(": ", 2)[2]
    ]
    assert matching, f"expected {where}: {c.field}: ...{c.message}..., got:\n{stderr}"


def test_the_reference_recipe_and_config_are_valid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The cases break one thing each; this proves the thing they break was all that was wrong."""
    recipe = write(tmp_path, "recipe.yaml", textwrap.dedent(VALID_RECIPE).lstrip())
    assert run_in_process(capsys, str(recipe), "--config", str(SIM_CONFIG)) == (0, "")
    config = write(tmp_path, "mdf.yaml", textwrap.dedent(CONFIG).lstrip())
    recipe = write(tmp_path, "config-recipe.yaml", textwrap.dedent(CONFIG_RECIPE).lstrip())
    assert run_in_process(capsys, str(recipe), "--config", str(config)) == (0, "")


@pytest.mark.parametrize("c", RECIPES)
def test_malformed_recipe_is_located(
    c: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = write(tmp_path, f"{c.id}.yaml", c.text)
    code, stderr = run_in_process(capsys, str(recipe), "--config", str(SIM_CONFIG))
    assert code == 2
    assert_located(stderr, recipe, c)


@pytest.mark.parametrize("c", CONFIGS)
def test_malformed_config_is_located(
    c: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MDFD_TEST_SURELY_UNSET_VARIABLE", raising=False)
    config = write(tmp_path, f"{c.id}.yaml", c.text)
    recipe = write(tmp_path, "recipe.yaml", textwrap.dedent(CONFIG_RECIPE).lstrip())
    code, stderr = run_in_process(capsys, str(recipe), "--config", str(config))
    assert code == 2
    assert_located(stderr, config, c)


def test_a_recipe_of_a_domain_the_mdf_does_not_serve_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The metal-only MDF of CONFIG refuses a ceramic recipe at its `domain:` line."""
    config = write(tmp_path, "mdf.yaml", textwrap.dedent(CONFIG).lstrip())
    text = textwrap.dedent(CONFIG_RECIPE).lstrip()
    text = text.replace('version: "1"}', 'version: "1",\n  domain: ceramic}', 1)
    recipe = write(tmp_path, "recipe.yaml", text)
    code, stderr = run_in_process(capsys, str(recipe), "--config", str(config))
    assert code == 2
    expected = Case("", text, 2, "recipe.domain", "MDF 'test-mdf' serves metal")
    assert_located(stderr, recipe, expected)
    served = text.replace("domain: ceramic", "domain: metal")
    recipe_ok = write(tmp_path, "served.yaml", served)
    assert run_in_process(capsys, str(recipe_ok), "--config", str(config)) == (0, "")
    state = tmp_path / "state"
    config.write_text(config.read_text().replace("/tmp/mdfd-test", str(tmp_path)))
    done = mdfd("run", "--config", str(config), str(recipe))
    assert done.returncode == 2, done.stderr
    assert f"{recipe}:2: recipe.domain: a ceramic recipe" in done.stderr
    assert not (tmp_path / "data").exists()  # refused before a run or its file existed
    assert not state.exists() or not any(state.glob("*.sqlite3"))


def test_every_problem_is_listed_not_just_the_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = textwrap.dedent(
        """
        recipe: {name: t, version: "1"}
        sweep:
          parameters:
            temperature: {unit: degC, values: [100, 1500]}
        steps:
          - set: {furnace.temperature: 20}
          - ramp: {channel: furnace.setpoint, to: temperature, rate: 5}
          - acquire: {channels: [meter.nothing], rate: 1, count: 3}
        record:
          properties:
            - {code: NOT_A_CODE, from: temperature}
        """
    ).lstrip()
    recipe = write(tmp_path, "many.yaml", text)
    code, stderr = run_in_process(capsys, str(recipe), "--config", str(SIM_CONFIG))
    assert code == 2
    located = [line.split(": ", 2)[:2] for line in stderr.strip().splitlines()]
    assert located == [
        [f"{recipe}:6", "steps[0].set.furnace.temperature"],
        [f"{recipe}:7", "steps[1].ramp.to"],
        [f"{recipe}:8", "steps[2].acquire.channels[0]"],
        [f"{recipe}:11", "record.properties[0].code"],
    ]


def test_an_empty_recipe_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = write(tmp_path, "empty.yaml", "")
    code, stderr = run_in_process(capsys, str(recipe), "--config", str(SIM_CONFIG))
    assert code == 2
    assert stderr == f"{recipe}: (document): a recipe must be a mapping\n"


def test_a_missing_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere.yaml"
    code, stderr = run_in_process(capsys, str(missing), "--config", str(SIM_CONFIG))
    assert code == 2
    assert stderr.startswith(f"{missing}: (document): cannot read")


# A few cases through the real CLI as a separate process (each process start costs seconds).
PROCESS_CASES = {"beyond-limits-in-kelvin": "plan", "zip-unequal-axes": "validate"}


@pytest.mark.parametrize("c", [p for p in RECIPES if p.id in PROCESS_CASES])
def test_malformed_recipe_through_the_real_cli(c: Case, tmp_path: Path) -> None:
    recipe = write(tmp_path, f"{c.id}.yaml", c.text)
    done = mdfd(PROCESS_CASES[c.id], str(recipe), "--config", str(SIM_CONFIG))
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert_located(done.stderr, recipe, c)


@pytest.mark.parametrize("c", [p for p in CONFIGS if p.id == "config-missing-env-var"])
def test_malformed_config_through_the_real_cli(c: Case, tmp_path: Path) -> None:
    config = write(tmp_path, f"{c.id}.yaml", c.text)
    recipe = write(tmp_path, "recipe.yaml", textwrap.dedent(CONFIG_RECIPE).lstrip())
    env = {k: v for k, v in os.environ.items() if k != "MDFD_TEST_SURELY_UNSET_VARIABLE"}
    done = mdfd("validate", str(recipe), "--config", str(config), env=env)
    assert done.returncode == 2
    assert done.stdout == ""
    assert_located(done.stderr, config, c)


EXAMPLE_TEXTS = [path.read_text() for path in sorted(EXAMPLES.glob("*.yaml"))]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.sampled_from(["5 min", "-1 s", "temperature", "meter.nope", "5 degC/min", "{", "1500 K"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=5,
)


def _paths(value: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        children = list(value.items())
    elif isinstance(value, list):
        children = list(enumerate(value))
    else:
        children = []
    for key, child in children:
        out.extend(_paths(child, (*prefix, key)))
    return out


@functools.cache
def _sim_config() -> LoadedConfig:
    return load_config(SIM_CONFIG)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(range(len(EXAMPLE_TEXTS))), st.data())
def test_any_damage_to_an_example_is_accepted_or_located(which: int, data: st.DataObject) -> None:
    """Whatever is written anywhere in a recipe, the tools answer with located problems —
    never a traceback. (This found pint's tokenizer errors escaping on units like "{".)"""
    document = yaml.safe_load(EXAMPLE_TEXTS[which])
    path = data.draw(st.sampled_from(_paths(document)))
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = data.draw(VALUES)
    config = _sim_config()
    try:
        recipe = load_recipe("damaged.yaml", yaml.safe_dump(document))
        problems = check(recipe, config)
        if not problems:
            assert make_plan(recipe, config).points
    except InputError as exc:
        problems = exc.problems
    assert all(p.source == "damaged.yaml" and p.message for p in problems)
