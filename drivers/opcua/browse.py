"""Walk a server's address space so an engineer can write the channel map of a new server.

Level by level, one Browse call per level and a few batched Reads at the end: a large plant
server answers in a handful of round trips instead of one per node.
"""

from __future__ import annotations

from asyncua import Client, ua

from ..base import BrowseEntry
from .nodeids import format_node, node_id
from .values import status_name, to_python

HAS_PROPERTY = node_id(ua.ObjectIds.HasProperty)
OBJECTS = node_id(ua.ObjectIds.ObjectsFolder)
ENGINEERING_UNITS = "EngineeringUnits"


async def _children(
    client: Client, parents: list[ua.NodeId]
) -> list[list[ua.ReferenceDescription]]:
    params = ua.BrowseParameters()
    params.View = ua.ViewDescription()
    params.RequestedMaxReferencesPerNode = 0
    for parent in parents:
        description = ua.BrowseDescription()
        description.NodeId = parent
        description.BrowseDirection = ua.BrowseDirection.Forward
        description.ReferenceTypeId = node_id(ua.ObjectIds.HierarchicalReferences)
        description.IncludeSubtypes = True
        description.NodeClassMask = 0
        description.ResultMask = ua.BrowseResultMask.All
        params.NodesToBrowse.append(description)
    results = await client.uaclient.browse(params)
    return [list(result.References) for result in results]


async def browse(
    client: Client, start: ua.NodeId | None = None, depth: int = 6
) -> list[BrowseEntry]:
    """Every variable below `start` (default Objects, without the standard Server object)."""
    start = start or OBJECTS
    namespaces = await client.get_namespace_array()
    variables: list[tuple[ua.NodeId, str]] = []
    units: dict[ua.NodeId, ua.NodeId] = {}
    level: list[tuple[ua.NodeId, str]] = [(start, "")]
    for _ in range(depth):
        if not level:
            break
        results = await _children(client, [node for node, _ in level])
        next_level: list[tuple[ua.NodeId, str]] = []
        for (parent, path), references in zip(level, results, strict=True):
            for ref in references:
                node = ref.NodeId
                if parent == OBJECTS and node.NamespaceIndex == 0:
                    continue
                name = ref.BrowseName.Name or ""
                if ref.ReferenceTypeId == HAS_PROPERTY:
                    if name == ENGINEERING_UNITS:
                        units[parent] = node
                    continue
                child_path = f"{path}/{name}" if path else name
                if ref.NodeClass == ua.NodeClass.Variable:
                    variables.append((node, child_path))
                if ref.NodeClass in (ua.NodeClass.Object, ua.NodeClass.Variable):
                    next_level.append((node, child_path))
        level = next_level
    if not variables:
        return []
    ids = [node for node, _ in variables]
    values = await client.uaclient.read_attributes(ids, ua.AttributeIds.Value)
    types = await client.uaclient.read_attributes(ids, ua.AttributeIds.DataType)
    access = await client.uaclient.read_attributes(ids, ua.AttributeIds.UserAccessLevel)
    type_ids = sorted(
        {dv.Value.Value for dv in types if dv.Value is not None and dv.Value.Value is not None},
        key=str,
    )
    type_names: dict[ua.NodeId, str] = {}
    if type_ids:
        names = await client.uaclient.read_attributes(type_ids, ua.AttributeIds.BrowseName)
        type_names = {
            tid: dv.Value.Value.Name if dv.Value is not None and dv.Value.Value else str(tid)
            for tid, dv in zip(type_ids, names, strict=True)
        }
    unit_of: dict[ua.NodeId, str] = {}
    unit_nodes = [units[node] for node in ids if node in units]
    if unit_nodes:
        unit_values = await client.uaclient.read_attributes(unit_nodes, ua.AttributeIds.Value)
        for node, dv in zip([n for n in ids if n in units], unit_values, strict=True):
            info = dv.Value.Value if dv.Value is not None else None
            if isinstance(info, ua.EUInformation) and info.DisplayName is not None:
                unit_of[node] = info.DisplayName.Text or ""
    entries = []
    for (node, path), value, dtype, level_dv in zip(variables, values, types, access, strict=True):
        good = value.StatusCode is None or value.StatusCode.is_good()
        raw = value.Value.Value if value.Value is not None else None
        type_id = dtype.Value.Value if dtype.Value is not None else None
        access_bits = level_dv.Value.Value if level_dv.Value is not None else 0
        entries.append(
            BrowseEntry(
                node=format_node(node, namespaces),
                path=path,
                data_type=type_names.get(type_id, "") if type_id is not None else "",
                value=to_python(raw) if good and raw is not None else None,
                status=status_name(value.StatusCode) if value.StatusCode is not None else "Good",
                unit=unit_of.get(node, ""),
                writable=bool((access_bits or 0) & (1 << ua.AccessLevel.CurrentWrite)),
            )
        )
    return entries
