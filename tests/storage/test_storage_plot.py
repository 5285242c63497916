"""What `mdfd plot` draws, read back from the matplotlib figure: scattered designs as one
scatter, units as people write them, partial runs marked, no offset ticks, whole titles."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure

from mdfd.daemons.storage.layout import ChannelSpec
from mdfd.daemons.storage.plot import draw_summary, pretty_unit
from mdfd.daemons.storage.reader import Summary

CHANNEL = ChannelSpec("meter.resistivity", "microohm*cm")


def summary(
    x: list[float],
    y: list[float] | None = None,
    means: list[float] | None = None,
    status: str = "completed",
    point_status: list[str] | None = None,
) -> Summary:
    """A summary table of one channel against `temperature` (and `time` when y is given)."""
    rows = len(x)
    parameters = {"temperature": np.array(x, dtype=float)}
    if y is not None:
        parameters["time"] = np.array(y, dtype=float)
    mean = np.array(means if means is not None else [1.7 + 0.01 * i for i in range(rows)])
    columns = {"point_index": np.arange(rows), **parameters}
    columns.update(
        {
            "meter.resistivity_mean": mean,
            "meter.resistivity_std": np.full(rows, 0.01),
            "meter.resistivity_min": mean - 0.02,
            "meter.resistivity_max": mean + 0.02,
            "meter.resistivity_n": np.full(rows, 5),
            "start_time": np.arange(rows, dtype=float),
            "end_time": np.arange(rows, dtype=float) + 0.5,
            "status": np.array(point_status or ["completed"] * rows),
        }
    )
    return Summary(
        parameters=list(parameters),
        parameter_units={"temperature": "degC", "time": "min"},
        channels=[CHANNEL],
        columns=columns,
        metadata={"status": status},
    )


def drawn(data: Summary, title: str = "run r-1") -> Figure:
    figure, panels = draw_summary(data, title=title)
    assert panels == 1
    figure.canvas.draw()
    return figure


def test_a_latin_hypercube_is_one_scatter_coloured_by_the_second_parameter() -> None:
    rng = np.random.default_rng(7)
    x, y = rng.uniform(200, 400, 8).tolist(), rng.uniform(15, 60, 8).tolist()
    figure = drawn(summary(x, y))
    panel, colorbar = figure.axes
    assert panel.get_legend() is None
    [dots] = [c for c in panel.collections if isinstance(c, PathCollection)]
    assert len(dots.get_offsets()) == 8
    np.testing.assert_allclose(dots.get_array(), y)
    assert colorbar.get_ylabel() == "time [min]"


def test_a_grid_is_a_family_of_curves() -> None:
    x = [200.0, 300.0, 400.0] * 2
    y = [15.0] * 3 + [60.0] * 3
    figure = drawn(summary(x, y))
    [panel] = figure.axes
    curves = [container.lines[0] for container in panel.containers]
    assert [curve.get_xdata().tolist() for curve in curves] == [[200, 300, 400]] * 2
    labels = [text.get_text() for text in panel.get_legend().get_texts()]
    assert labels == ["time=15 min", "time=60 min"]


@pytest.mark.parametrize(
    ("unit", "shown"),
    [
        ("degC", "°C"),
        ("microohm*cm", "µΩ·cm"),
        ("degC/min", "°C/min"),
        ("percent", "%"),
        ("L/min", "L/min"),
        ("nF", "nF"),
        ("HV", "HV"),
        ("dimensionless", ""),
    ],
)
def test_units_are_shown_as_people_write_them(unit: str, shown: str) -> None:
    assert pretty_unit(unit) == shown


def test_axis_labels_use_those_units() -> None:
    [panel] = drawn(summary([200.0, 300.0, 400.0])).axes
    assert panel.get_xlabel() == "temperature [°C]"
    assert panel.get_ylabel() == "meter.resistivity [µΩ·cm]"


def test_a_run_that_did_not_complete_is_marked_partial() -> None:
    data = summary(
        [200.0, 250.0, 300.0, 350.0],
        status="aborted",
        point_status=["completed", "completed", "completed", "failed"],
    )
    title = drawn(data)._suptitle.get_text().replace("\n", " ")
    assert title == "run r-1 (partial: run aborted, 3 of 4 points completed)"
    completed = drawn(summary([200.0, 250.0]))._suptitle.get_text()
    assert completed == "run r-1"


def test_ticks_show_values_not_an_offset() -> None:
    figure = drawn(summary([1180.0, 1180.5, 1181.0], means=[1180.1, 1180.4, 1181.2]))
    [panel] = figure.axes
    for axis in (panel.xaxis, panel.yaxis):
        assert axis.get_offset_text().get_text() == ""
        assert any(label.get_text().startswith("1180") for label in axis.get_ticklabels())


def test_a_long_title_is_not_clipped() -> None:
    title = "run 20261204T174245Z-copper-wire-annealing-recovery-window-0b70 — " * 3
    figure = drawn(summary([200.0, 300.0, 400.0]), title=title)
    renderer = figure.canvas.get_renderer()
    box = figure._suptitle.get_window_extent(renderer)
    assert box.x0 >= 0
    assert box.x1 <= figure.bbox.width
    assert box.y1 <= figure.bbox.height
