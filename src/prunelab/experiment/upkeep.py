"""The upkeep of an experiment: what changes its stored nodes after they were made (tags, removal, merges, gc)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..core.errors import StateDefinitionError
from ..core.graph import Graph
from ..core.nodes import Node
from ..core.nodeset import NodeSet
from ..core.state import check_tag
from ..storage.gc import GCReport
from ..storage.storage import Storage
from .declare import Declarations

__all__ = ["Upkeep"]


class Upkeep:
    """The base of :class:`~prunelab.Experiment` that changes what is stored: tags, removals, merges and gc.

    It works on the experiment's :class:`Storage`, graph and declarations (set when the experiment opens).
    """

    directory: Path
    storage: Storage
    graph: Graph
    declared: Declarations

    def _own(self, node: Node, what: str) -> None:
        """Refuse a node of another experiment (``what`` names the operation)."""
        owner: object = node.experiment  # the experiment that made it, seen as a Host
        if owner is not self:
            raise StateDefinitionError(
                f"{what} was applied to node {node.id[:12]} of another experiment ({node.experiment.directory}); "
                f"apply it to nodes of {self.directory}."
            )

    def add_tag(self, nodes: Node | Iterable[Node], tag: str) -> None:
        """Add ``tag`` to stored nodes now (append-only log).

        Parameters
        ----------
        nodes : Node or iterable of Node
            Nodes of this experiment.
        tag : str
            A non-empty str.
        """
        check_tag(tag)
        self._write_tags([["+", n.id, tag] for n in self._as_nodes(nodes)])

    def remove_tag(self, nodes: Node | Iterable[Node], tag: str) -> None:
        """Remove ``tag`` from nodes now (recorded in the append-only log).

        Parameters
        ----------
        nodes : Node or iterable of Node
            Nodes of this experiment.
        tag : str
            The tag to remove.
        """
        targets = self._as_nodes(nodes)
        for node in targets:
            if node._tags:
                node._tags.discard(tag)
        self._write_tags([["-", n.id, tag] for n in targets])

    def _as_nodes(self, nodes: Node | Iterable[Node]) -> list[Node]:
        items = [nodes] if isinstance(nodes, Node) else list(nodes)
        for node in items:
            if not isinstance(node, Node):
                raise StateDefinitionError(f"expected nodes, got {type(node).__qualname__}.")
            self._own(node, "a tag change")
        return items

    def _write_tags(self, entries: list[list[str]]) -> None:
        if entries:
            self.storage.write_tags(entries)
            self.graph.invalidate()

    def remove(self, node: Node) -> list[str]:
        """Remove a stored node and its whole subtree (files are deleted by ``gc``); return the ids.

        Parameters
        ----------
        node : Node
            A node of this experiment.

        Returns
        -------
        list of str
            The ids of ``node`` and of its descendants.
        """
        self._own(node, "remove()")
        ids = [n.id for n in [node, *NodeSet([node]).descendants()]]
        self.storage.remove(ids)
        for node_id in ids:
            self.declared.nodes.pop(node_id, None)
        self.graph.forget(ids)
        return ids

    def merge(self, directory: str | Path) -> list[str]:
        """Merge another experiment directory of the same state class into this one (a union).

        Returns the ids of the states added. Re-merging is harmless.

        Parameters
        ----------
        directory : str or Path
            The experiment merged in (only read).

        Returns
        -------
        list of str
            The ids of the states added (merging again adds none).
        """
        added = self.storage.merge(directory)
        self.graph.reload()
        return added

    def gc(self, *, repair: bool = False, min_age_s: float = 3600.0, dry_run: bool = False) -> GCReport:
        """Delete crash leftovers, removed states and unreferenced blobs; see :func:`prunelab.storage.gc.collect`.

        Parameters
        ----------
        repair : bool, default=False
            Also verify every blob and set aside what is damaged, for the next run to recompute.
        min_age_s : float, default=3600.0
            Keep anything younger, in seconds (a concurrent writer may still be using it).
        dry_run : bool, default=False
            Report only.

        Returns
        -------
        GCReport
            What was removed (or would be, with ``dry_run``) and what was found damaged.
        """
        report = self.storage.collect(repair=repair, min_age_s=min_age_s, dry_run=dry_run)
        if (report.states_removed or report.results_removed or report.logs_removed) and not dry_run:
            for node_id in report.states_removed:  # as remove() does: a later run() here must not reach them
                self.declared.nodes.pop(node_id, None)
            self.graph.forget(report.states_removed)
            self.graph.reload()
        return report
