"""Running a function on a computed state: seeded, on a private copy, its result (and series) stored."""

from __future__ import annotations

import time
import traceback
from typing import TYPE_CHECKING

from ..core.display import to_display
from ..core.prereg import split_blinded
from ..core.recipe import fingerprint
from ..core.records import ResultRecord, stamps
from ..core.runtime import running
from ..core.seeding import derive_seed
from ..core.state import bind_node
from ..storage.codecs import encode_value
from ..storage.series import encode_series
from .bodies import settings_changed
from .checkpoints import BodyRuntime

if TYPE_CHECKING:
    from ..core.function import Function
    from ..storage.lease import Lease
    from .engine import Engine
    from .materialise import Materialized
    from .task import Task

__all__ = ["run_function"]


def run_function(engine: Engine, task: Task, function: Function, parent: Materialized | None, lease: Lease
                 ) -> tuple[bool, str | None]:
    """Run a function on a task's state and store its result under ``lease``: (True, None) or (False, traceback).

    The function receives a private copy of the state (from ``parent`` in
    memory, else the store), seeded for ``function:<name>``; what it logs
    with :func:`prunelab.log` is stored with its result.
    """
    started = time.time()
    seed = derive_seed(task.node_id, f"function:{function.name}")
    owner = f"result of function {function.name!r}"
    try:
        root_id = task.record.root
        state = bind_node(engine.materialiser.load_state(task.node_id, task.properties, root_id, parent),
                          task.node_id, task.tags)
        what = f"function {function.name!r} (node {task.node_id[:12]}…)"
        runtime = BodyRuntime(task.node_id)
        with engine.body(seed, [root_id], what), running(runtime):
            value = function.fn(state, **function.options)
            settings_changed(what, engine.threads, engine.deterministic)
        value, withheld = split_blinded(value, function.name, task.blinded)
        encoded = encode_value(value, owner=owner, allow_stateful=False)
        hidden = encode_value(withheld, owner=owner, allow_stateful=False) if withheld else None
        series = encode_series(runtime.series.frozen())
    except Exception:  # noqa: BLE001 - recorded and reported
        return False, traceback.format_exc()
    run = {"started": started, "wall_s": time.time() - started, "worker": engine.worker,
           **stamps(engine.environment, engine.spec.prereg)}
    if function.options:  # how it ran, recorded as a recipe's options are (not part of the result's identity)
        run["options"] = {k: to_display(v) for k, v in function.options.items()}
    blobs = dict(encoded.blobs) if series is None else {**encoded.blobs, series.digest: series}
    record = ResultRecord(function.name, function.version, task.node_id, seed, fingerprint(function.fn),
                          getattr(function.fn, "__module__", None), getattr(function.fn, "__qualname__", None),
                          encoded.spec, sorted(blobs), run, None if hidden is None else sorted(withheld),
                          None if series is None else series.digest)
    withheld_part = None
    if hidden is not None:
        withheld_part = (record.withheld(hidden.spec, sorted(hidden.blobs)).to_dict(), hidden.blobs)
    engine.writer.store_result(task.node_id, record.to_dict(), blobs, withheld_part, lease)
    return True, None
