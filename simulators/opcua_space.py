"""The reactor skid's OPC-UA address space: one folder per unit, typed variables with units.

Real process servers publish analog values as AnalogItemType with EngineeringUnits and EURange
so that an engineer browsing the server can write a channel map without the P&ID at hand, and
refuse a write outside EURange with BadOutOfRange; we do the same, so `mdfd probe --browse` and
third-party tools see what they would see on the plant.
"""

from __future__ import annotations

from dataclasses import dataclass

from asyncua import Node, Server, ua

UNECE_URI = "http://www.opcfoundation.org/UA/units/un/cefact"


@dataclass(frozen=True)
class Unit:
    """A UNECE Recommendation 20 unit, as OPC-UA's EUInformation expects."""

    code: str
    symbol: str
    description: str

    def information(self) -> ua.EUInformation:
        unit_id = 0
        for char in self.code:
            unit_id = (unit_id << 8) | ord(char)
        return ua.EUInformation(
            NamespaceUri=UNECE_URI,
            UnitId=unit_id,
            DisplayName=ua.LocalizedText(self.symbol),
            Description=ua.LocalizedText(self.description),
        )


CELSIUS = Unit("CEL", "°C", "degree Celsius")
BAR = Unit("BAR", "bar", "bar")
LITRE_PER_MINUTE = Unit("L2", "L/min", "litre per minute")
PERCENT = Unit("P1", "%", "percent")
ONE = Unit("C62", "1", "dimensionless")
RPM = Unit("RPM", "r/min", "revolutions per minute")
SECOND = Unit("SEC", "s", "second")
MILLISECOND = Unit("C26", "ms", "millisecond")


@dataclass(frozen=True)
class Tag:
    """One variable: `key` ("Folder.Name") is also its string node id in our namespace."""

    folder: str
    name: str
    variant: ua.VariantType
    initial: object
    unit: Unit | None = None
    eu_range: tuple[float, float] | None = None
    writable: bool = False
    description: str = ""

    @property
    def key(self) -> str:
        return f"{self.folder}.{self.name}"


_D = ua.VariantType.Double
TAGS: tuple[Tag, ...] = (
    Tag("Reactor", "Temperature", _D, 25.0, CELSIUS, (0.0, 500.0), description="bed temperature"),
    Tag("Reactor", "TemperatureSetpoint", _D, 25.0, CELSIUS, (20.0, 450.0), writable=True),
    Tag("Reactor", "Pressure", _D, 1.0, BAR, (0.0, 60.0), description="reactor pressure"),
    Tag("Reactor", "PressureSetpoint", _D, 1.0, BAR, (1.0, 50.0), writable=True),
    Tag("Reactor", "AgitatorSpeed", ua.VariantType.Float, 300.0, RPM, (0.0, 1500.0), writable=True),
    Tag("Feed", "Flow", _D, 0.0, LITRE_PER_MINUTE, (0.0, 12.0), description="feed flow"),
    Tag("Feed", "FlowSetpoint", _D, 0.0, LITRE_PER_MINUTE, (0.0, 10.0), writable=True),
    Tag("Feed", "ValvePosition", _D, 0.0, PERCENT, (0.0, 100.0), description="control valve"),
    Tag("Feed", "PumpRunning", ua.VariantType.Boolean, True, writable=True),
    Tag("Bath", "pH", _D, 7.0, ONE, (0.0, 14.0), description="dye-bath pH"),
    Tag("Bath", "pHSetpoint", _D, 7.0, ONE, (2.0, 12.0), writable=True),
    Tag("Analyser", "Conversion", _D, 0.0, PERCENT, (0.0, 100.0), description="online GC"),
    Tag("Analyser", "Selectivity", _D, 0.0, PERCENT, (0.0, 100.0), description="online GC"),
    Tag("Analyser", "SampleInterval", ua.VariantType.UInt16, 60, SECOND, (1, 3600), writable=True),
    Tag("Analyser", "SampleCount", ua.VariantType.UInt32, 0, description="analyses done"),
    Tag("Faults", "ResponseDelay", _D, 0.0, MILLISECOND, (0.0, 60000.0), writable=True),
    Tag("Faults", "Stuck", ua.VariantType.String, "", writable=True, description="keys, comma"),
    Tag("Faults", "Bad", ua.VariantType.String, "", writable=True, description="keys, comma"),
    Tag(
        "Faults",
        "Invalid",
        ua.VariantType.String,
        "",
        writable=True,
        description="keys, comma: published as NaN with a Good status (an overflowed sensor)",
    ),
    Tag("Faults", "Restart", ua.VariantType.Boolean, False, writable=True),
)
TAGS_BY_KEY = {tag.key: tag for tag in TAGS}


def node_id(tag: Tag, namespace: int) -> ua.NodeId:
    return _node(tag.key, namespace)


def _node(identifier: int | str, namespace: int = 0) -> ua.NodeId:
    """asyncua annotates NodeId's fields with its wire-encoding marker classes (ua.Int32,
    ua.String, ua.Int16 ...), though it takes, and its own decoder returns, plain values."""
    return ua.NodeId(identifier, namespace)  # type: ignore[arg-type]


async def build_address_space(server: Server, namespace: int) -> dict[str, Node]:
    """Create folders and variables under Objects; return the variables by key."""
    folders: dict[str, Node] = {}
    variables: dict[str, Node] = {}
    for tag in TAGS:
        folder = folders.get(tag.folder)
        if folder is None:
            folder_id = _node(tag.folder, namespace)
            # The folder's browse name is in our namespace like its variables', so a browse
            # path such as /Objects/2:Reactor/2:Pressure translates.
            folder = await server.nodes.objects.add_folder(
                folder_id, ua.QualifiedName(tag.folder, namespace)
            )
            folders[tag.folder] = folder
        variable = await folder.add_variable(
            node_id(tag, namespace),
            ua.QualifiedName(tag.name, namespace),
            ua.Variant(tag.initial, tag.variant),
        )
        if tag.eu_range is not None:
            await _make_analog_item(variable)
        if tag.writable:
            await variable.set_writable()
        if tag.description:
            await variable.write_attribute(
                ua.AttributeIds.Description,
                ua.DataValue(ua.Variant(ua.LocalizedText(tag.description))),
            )
        if tag.unit is not None:
            await variable.add_property(
                _node(f"{tag.key}.EngineeringUnits", namespace),
                ua.QualifiedName("EngineeringUnits", 0),
                tag.unit.information(),
                datatype=_node(ua.ObjectIds.EUInformation),
            )
        if tag.eu_range is not None:
            low, high = tag.eu_range
            await variable.add_property(
                _node(f"{tag.key}.EURange", namespace),
                ua.QualifiedName("EURange", 0),
                ua.Range(Low=low, High=high),
                datatype=_node(ua.ObjectIds.Range),
            )
        variables[tag.key] = variable
    return variables


async def _make_analog_item(variable: Node) -> None:
    """Retype a freshly created variable from BaseDataVariableType to AnalogItemType."""
    await variable.delete_reference(
        _node(ua.ObjectIds.BaseDataVariableType),
        ua.ObjectIds.HasTypeDefinition,
        bidirectional=False,
    )
    await variable.add_reference(
        _node(ua.ObjectIds.AnalogItemType), ua.ObjectIds.HasTypeDefinition, bidirectional=False
    )


def out_of_range(key: str, value: object) -> tuple[float, float] | None:
    """The EURange `value` falls outside for the variable `key`, or None if it is acceptable."""
    tag = TAGS_BY_KEY.get(key)
    if tag is None or tag.eu_range is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    low, high = tag.eu_range
    # A NaN is refused too (it is inside no range): fed to the physics it would stay for good.
    # Clients meet device NaNs through the Faults.Invalid switch instead.
    return None if low <= value <= high else tag.eu_range
