"""Learning curves: the series nodes logged, as pandas frames (see :func:`prunelab.core.runtime.log`).

A state's series was logged by the recipe that made it; each function result
may carry the series its function logged. :func:`history` lays the series of
a node's lineage end to end — train, prune, finetune — on one global step
axis, and says where each recipe begins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas

    from .nodes import Node

__all__ = ["history", "node_series", "set_series"]

_COLUMNS = ["name", "step", "value", "source"]


def _parts(node: Node, name: str | None) -> list[tuple[str, str, Any, Any]]:
    """(source, name, steps, values) of every series of ``node`` (``name`` only, when given)."""
    storage = node.experiment.storage
    sources = []
    if node.record.get("series"):
        sources.append(("recipe", node.record["series"]))
    for key, result in sorted(storage.results(node.id).items()):
        if result.get("series"):
            sources.append((f"function:{key}", result["series"]))
    out = []
    for source, digest in sources:
        for series_name, (steps, values) in storage.series(digest).items():
            if name is None or series_name == name:
                out.append((source, series_name, steps, values))
    return out


def node_series(node: Node, name: str | None = None) -> pandas.DataFrame:
    """One node's series as a long frame: ``name``, ``step``, ``value``, ``source`` (``recipe`` or the function).

    Parameters
    ----------
    node : Node
        A stored node (a declared one has no series yet: the frame is empty).
    name : str, optional
        Only this series.

    Returns
    -------
    pandas.DataFrame
        One row per logged value, in the order logged within each series.
    """
    import numpy as np
    import pandas as pd

    parts = _parts(node, name)
    if not parts:
        return pd.DataFrame({"name": pd.Series(dtype=object), "step": pd.Series(dtype="int64"),
                             "value": pd.Series(dtype="float64"), "source": pd.Series(dtype=object)})
    return pd.DataFrame({
        "name": np.concatenate([np.full(len(steps), n, dtype=object) for _, n, steps, _ in parts]),
        "step": np.concatenate([steps for _, _, steps, _ in parts]),
        "value": np.concatenate([values for _, _, _, values in parts]),
        "source": np.concatenate([np.full(len(steps), s, dtype=object) for s, _, steps, _ in parts]),
    })


def set_series(nodes: list[Node], name: str | None) -> pandas.DataFrame:
    """The series of many nodes as one long frame, with each node's id, properties and lineage as columns.

    Parameters
    ----------
    nodes : list of Node
        The nodes, in order.
    name : str or None
        Only this series (None: all).

    Returns
    -------
    pandas.DataFrame
        ``node_id``, the series columns of :func:`node_series`, then the node's properties and lineage
        fields (``root_id``, ``depth``, ``technique``, ``treatment`` …), so curves group by seed and treatment.
    """
    import pandas as pd

    frames = []
    for node in nodes:
        frame = node_series(node, name)
        if frame.empty:
            continue
        frame.insert(0, "node_id", node.id)
        for key, value in {**node.properties, **node.lineage}.items():
            if key not in frame.columns and (value is None or isinstance(value, (bool, int, float, str))):
                frame[key] = value
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["node_id", *_COLUMNS])
    return pd.concat(frames, ignore_index=True)


def history(node: Node, name: str) -> pandas.DataFrame:
    """The series ``name`` along a node's lineage, root first, on one global step axis.

    Each ancestor's series starts where the previous one ended: with
    :math:`n_k` the number of steps segment :math:`k` spans (its last step
    plus one; 0 when its recipe logged nothing, as a pruning step),
    ``global_step = step + sum(n_j for j < k)``. ``begins`` marks the first
    row of each recipe's segment.

    Parameters
    ----------
    node : Node
        The last state of the curve (e.g. a finetuned model).
    name : str
        The series (e.g. ``"loss"``).

    Returns
    -------
    pandas.DataFrame
        ``global_step``, ``value``, ``step``, ``node_id``, ``recipe``, ``begins``. Its
        ``attrs["events"]`` lists every recipe along the lineage with the global step it begins at
        (``global_step``, ``node_id``, ``recipe``, ``kind``: ``"prune"`` where the pruning round changes,
        else ``"recipe"``), including those that logged nothing.
    """
    import pandas as pd

    chain = []
    walk: Node | None = node
    while walk is not None:
        chain.append(walk)
        walk = walk.parent
    chain.reverse()
    frames, events, offset = [], [], 0
    previous_round = None
    for member in chain:
        recipe = (member.recipe or {}).get("name")
        this_round = member.lineage.get("round")
        if recipe is not None:
            kind = "prune" if this_round != previous_round else "recipe"
            events.append({"global_step": offset, "node_id": member.id, "recipe": recipe, "kind": kind})
        previous_round = this_round
        frame = node_series(member, name)
        frame = frame[frame["source"] == "recipe"]
        if frame.empty:
            continue
        frames.append(pd.DataFrame({"global_step": frame["step"].to_numpy() + offset, "value": frame["value"].to_numpy(),
                                    "step": frame["step"].to_numpy(), "node_id": member.id, "recipe": recipe or "root",
                                    "begins": [True] + [False] * (len(frame) - 1)}))
        offset += int(frame["step"].max()) + 1
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["global_step", "value", "step", "node_id", "recipe", "begins"])
    out.attrs["events"] = events
    return out
