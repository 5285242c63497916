"""config/example-hardware.yaml validates, and fits the sandbox mdfd@.service puts it in."""

from __future__ import annotations

import re
from pathlib import Path

from mdfd.daemons.core.config import load_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "example-hardware.yaml"
UNIT = REPO / "systemd" / "mdfd@.service"


def _unit_values(key: str) -> list[str]:
    pattern = re.compile(rf"^{re.escape(key)}=(.*)$", re.MULTILINE)
    return pattern.findall(UNIT.read_text())


def test_example_validates_with_every_driver() -> None:
    config = load_config(EXAMPLE).model
    drivers = {spec.driver for spec in config.instruments.values()}
    assert drivers == {"modbus", "opcua", "visa"}
    assert config.simulators == {}
    assert config.time_scale == 1.0


def test_storage_lies_inside_the_units_writable_directories() -> None:
    """ProtectSystem=strict: the daemon can write only its State- and RuntimeDirectory."""
    config = load_config(EXAMPLE).model
    instance = config.mdf.id
    assert _unit_values("StateDirectory") == ["mdfd/%i"]
    assert _unit_values("RuntimeDirectory") == ["mdfd/%i"]
    state = Path("/var/lib/mdfd") / instance
    storage = config.storage
    assert storage.runtime_dir == Path("/run/mdfd") / instance
    assert storage.control_socket == Path("/run/mdfd") / instance / "control.sock"
    for path in (storage.data_dir, storage.state_dir):
        assert path.is_relative_to(state), path
    for publisher in config.upstream.publishers:
        directory = getattr(publisher, "directory", None)
        if directory is not None:
            assert Path(directory).is_relative_to(state), directory


def test_serial_devices_are_ones_the_unit_allows() -> None:
    """DevicePolicy=closed: a port outside DeviceAllow= would fail with EPERM at 3 a.m."""
    allowed = {value.split()[0].removeprefix("char-") for value in _unit_values("DeviceAllow")}
    assert allowed == {"ttyS", "ttyUSB", "ttyACM"}
    config = load_config(EXAMPLE).model
    devices = []
    for spec in config.instruments.values():
        link = getattr(spec, "link", None)
        if getattr(link, "type", None) == "rtu":
            devices.append(link.device)
        resource = getattr(spec, "resource", "")
        if resource.upper().startswith("ASRL/DEV/"):
            devices.append(resource[len("ASRL") :].split("::")[0])
    assert len(devices) == 2, devices
    for device in devices:
        name = Path(device).name
        assert re.fullmatch(r"(ttyS|ttyUSB|ttyACM)\d+", name), device
