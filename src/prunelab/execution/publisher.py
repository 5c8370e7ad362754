"""Publishing from a helper process, so a run's file and index writes overlap its computing.

A state computed in memory is handed to its children at once; writing its
blobs, value file and record, renaming its directory into place and indexing
it is the same work wherever it runs. :class:`Publisher` runs that work in a
helper process (``python -m prunelab.execution.publisher``), one message per state
or result, in order, over a socket pair: the computing process pays for
copying the bytes into the socket, not for the filesystem and SQLite.

The helper is a fresh interpreter, not a fork: forking a process that holds
threads (lease heartbeats, progress displays, BLAS pools) can deadlock the
child, and on macOS it can crash it. It imports prunelab's model and storage
only (no torch). Until it says it is ready, states are published in the computing
process as usual, so a short run never waits for it to start; a helper that
cannot start leaves the whole run publishing in-process, with a warning.

Nothing about what is stored changes: the helper calls the same
:meth:`~prunelab.storage.states.States.publish` and
:meth:`~prunelab.storage.results.Results.write`, each atomic as before, in the
order the states were made (a parent before its children). A state's lease
stays with the computing process (whose heartbeat keeps it alive) until the
helper has published everything made under it; the helper checks the lease is
still the holder's before each rename, as the computing process would. The
helper dies with its parent (``PR_SET_PDEATHSIG`` on Linux; elsewhere it
stops when the socket closes), so a killed run loses its unpublished states
and nothing else, as before. Ctrl-C and the preemption signal are the
parent's to handle (the helper ignores them: a scheduler signals every
process of a job), and the parent waits for the helper to store what was
already computed, its last checkpoint included.

Checkpoints go the same way (:meth:`Publisher.write_partial`), so a recipe
pays for encoding its checkpoint, not for writing it. Their tensors cross
through shared memory instead of the socket: two buffers (anonymous files,
their descriptors passed over the socket, so nothing is left behind when
either process dies), each reused once the helper has acknowledged the
checkpoint in it. Only what the helper lacks crosses: a tensor the node's
previous checkpoint held (the helper keeps those) or one this run published
(it is in ``blobs/``) is named, not sent. A checkpoint queued but not
written when the run is killed is lost, and the one before it stays whole.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import pickle
import select
import signal
import subprocess
import sys
import traceback
import warnings
from collections import Counter
from multiprocessing.connection import Connection, Pipe
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..storage import files
from ..storage.codecs import Blob
from ..core.errors import PrunelabWarning, PublishError, StateDefinitionError
from ..storage.lease import Lease, read_lease
from .shared import SharedBuffer, receive_buffer

if TYPE_CHECKING:
    from .task import EngineSpec

__all__ = ["Publisher", "available"]

_STARTING, _READY, _UNAVAILABLE = "starting", "ready", "unavailable"
_BUFFERS = 2  # checkpoints in flight at once: one being written by the helper, the next being filled
_MIN_BUFFER = 1 << 20


def available() -> bool:
    """Whether this platform can run the helper (POSIX, with a Python executable to start)."""
    return os.name == "posix" and bool(sys.executable)


class Publisher:
    """The computing process's end: sends states and results, releases leases as they are published."""

    def __init__(self, spec: EngineSpec):
        ours, theirs = Pipe()
        package_root = str(Path(__file__).resolve().parents[2])  # the helper imports this very prunelab
        path = os.pathsep.join([package_root, *filter(None, [os.environ.get("PYTHONPATH")])])
        self.conn = ours
        self.acks = select.poll()  # whether acknowledgements wait (Connection.poll builds a selector per call)
        self.acks.register(ours.fileno(), select.POLLIN)
        self.phase = _STARTING
        try:
            self.process: subprocess.Popen[bytes] | None = subprocess.Popen(
                [sys.executable, "-m", __name__, str(theirs.fileno()), spec.directory, str(int(spec.durable)),
                 str(os.getpid())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": path})
        except OSError as err:
            self.process = None
            self._unavailable(f"it could not be started ({err})")
        finally:
            theirs.close()
        self.sent: set[str] = set()  # blobs already handed over in this run
        self.outstanding: Counter[Lease] = Counter()  # messages not yet acknowledged, per lease
        self.letting_go: set[Lease] = set()  # leases to release once their messages are acknowledged
        self.by_sequence: dict[int, tuple[Lease, str]] = {}
        self.sequence = 0
        self.elsewhere: list[str] = []  # states another writer published first (found out late)
        self.counters: Counter[str] = Counter()
        self.failure: PublishError | None = None  # what the helper reported, raised again by close()
        self.buffers: list[SharedBuffer] = []  # shared memory the checkpoints' tensors cross in
        self.checkpointed: dict[str, set[str]] = {}  # per state, the blobs its last queued checkpoint named

    def ready(self) -> bool:
        """Whether the helper has started; until it has (or when it cannot), publish in this process."""
        if self.phase == _STARTING:
            try:
                if self.conn.poll():
                    self.conn.recv()
                    self.phase = _READY
                    if os.environ.get(files.CRASH_ENV):  # the crash test hook counts writes across both processes
                        self.conn.send(("counts", files.crash_counts))
            except (EOFError, OSError):
                code = None if self.process is None else self.process.wait()
                self._unavailable(f"it exited at start with code {code}")
        return self.phase == _READY

    def publish_state(self, record: dict[str, Any], values: dict[str, Any] | None, blobs: dict[str, Blob],
                      lease: Lease) -> None:
        """Queue a state (or a failure record, ``values`` None) made under ``lease``."""
        self.checkpointed.pop(record["id"], None)
        self._send(("state", record, values, str(lease.path), lease.token), self._new_blobs(blobs), lease,
                   record["id"])

    def write_partial(self, record: dict[str, Any], blobs: dict[str, Blob], lease: Lease) -> None:
        """Queue a checkpoint (see :meth:`~prunelab.storage.partials.Partials.write`) made under ``lease``.

        The bytes of the blobs the helper lacks are copied into a shared buffer
        before this returns (the tensors may change as soon as it has).
        """
        node_id = record["id"]
        held = self.checkpointed.get(node_id, set())
        named: list[list[Any]] = []  # [digest, size] of those the helper has or finds in blobs/
        crossing: list[Blob] = []
        for name, blob in blobs.items():
            if name in held or name in self.sent:
                named.append([name, len(blob.data)])
            else:
                crossing.append(blob)
        index = self._buffer(sum(len(blob.data) for blob in crossing))
        buffer, places, offset = self.buffers[index], [], 0
        for blob in crossing:
            end = offset + len(blob.data)
            buffer.view[offset:end] = blob.data
            places.append([blob.digest, offset, end])
            offset = end
        self.checkpointed[node_id] = set(blobs)
        buffer.sequence = self.sequence + 1
        self._send(("partial", record, index, places, named), [], lease, "")

    def write_result(self, node_id: str, record: dict[str, Any], blobs: dict[str, Blob],
                     withheld: tuple[dict[str, Any], dict[str, Blob]] | None, lease: Lease) -> None:
        """Queue a function result (and its withheld part, under a blind) computed under ``lease``."""
        hidden = None if withheld is None else withheld[0]
        new = self._new_blobs({**blobs, **({} if withheld is None else withheld[1])})
        self._send(("result", node_id, record, hidden), new, lease, "")

    def let_go(self, lease: Lease) -> None:
        """Release ``lease`` as soon as everything queued under it is published."""
        if self.outstanding[lease]:
            self.letting_go.add(lease)
        else:
            del self.outstanding[lease]
            lease.release()
        if self.phase == _READY:
            self._drain(block=False)

    def close(self) -> None:
        """Wait until everything queued is published, then stop the helper.

        Raises :class:`PublishError` if the helper failed; the leases of whatever
        it had not published are released (those states are computed again
        by the next run).
        """
        try:
            if self.failure is not None:
                raise self.failure
            if self.phase == _READY:
                with contextlib.suppress(OSError):
                    self.conn.send(("stop",))
                self._drain(block=True)
        finally:
            self.conn.close()
            for buffer in self.buffers:
                buffer.close()
            self.buffers.clear()
            if self.process is not None:
                if self.phase != _READY:
                    self.process.kill()  # never used: nothing to wait for
                try:
                    self.process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            for lease in [*self.outstanding, *self.letting_go]:
                lease.release()
            self.outstanding.clear()
            self.letting_go.clear()

    def _unavailable(self, why: str) -> None:
        self.phase = _UNAVAILABLE
        warnings.warn(f"prunelab's publishing helper is not available: {why}; this run stores its states in "
                      "its own process (correct, a little slower).", PrunelabWarning, stacklevel=3)

    def _buffer(self, size: int) -> int:
        """A shared buffer of at least ``size`` bytes the helper is done with (waiting for one if need be)."""
        while True:
            free = [i for i, buffer in enumerate(self.buffers) if buffer.sequence not in self.by_sequence]
            fitting = [i for i in free if self.buffers[i].size >= size]
            if fitting:
                return fitting[0]
            if free or len(self.buffers) < _BUFFERS:
                index = free[0] if free else len(self.buffers)
                grown = SharedBuffer(max(size, _MIN_BUFFER, 2 * self.buffers[index].size if free else 0))
                if free:
                    self.buffers[index].close()
                    self.buffers[index] = grown
                else:
                    self.buffers.append(grown)
                try:
                    grown.send(self.conn, index)
                except OSError:  # the helper is gone: its own error (or its exit code) says why
                    self._drain(block=True)
                return index
            self._drain(block=True, until=min(buffer.sequence for buffer in self.buffers))

    def _new_blobs(self, blobs: dict[str, Blob]) -> list[Blob]:
        new = [blob for name, blob in blobs.items() if name not in self.sent]
        self.sent.update(blob.digest for blob in new)
        return new

    def _send(self, message: tuple[Any, ...], blobs: list[Blob], lease: Lease, node_id: str) -> None:
        """Send a message, then the bytes of the blobs it brings, joined (one write; no copy through pickle)."""
        self._drain(block=False)  # acknowledgements never fill their direction of the socket
        self.sequence += 1
        self.by_sequence[self.sequence] = (lease, node_id)
        self.outstanding[lease] += 1
        try:  # pickled plainly (what conn.send does, less its per-call pickler); the blobs' bytes in one piece
            self.conn.send_bytes(pickle.dumps((message[0], self.sequence, [[b.digest, len(b.data)] for b in blobs],
                                               *message[1:]), protocol=pickle.HIGHEST_PROTOCOL))
            if blobs:
                self.conn.send_bytes(blobs[0].data if len(blobs) == 1 else b"".join(b.data for b in blobs))
        except OSError:  # the helper is gone: its own error (or its exit code) says why
            self._drain(block=True)

    def _drain(self, block: bool, until: int | None = None) -> None:
        """Take the helper's acknowledgements: those there are; with ``block``, until it stops (or ``until`` is)."""
        if self.failure is not None:
            raise self.failure
        while (block and (until is None or until in self.by_sequence)) or self.acks.poll(0):
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                if not self.by_sequence:
                    return
                code = None if self.process is None else self.process.wait()
                self.failure = PublishError(
                    f"the publishing helper died (exit code {code}) with {len(self.by_sequence)} states or results "
                    "not stored; nothing was stored partially, and re-running computes them.")
                raise self.failure from None
            kind = message[0]
            if kind == "error":
                self.failure = PublishError(
                    "storing failed in the publishing helper; nothing was stored partially, and re-running computes "
                    f"the states and results not stored. Its error:\n{message[1]}")
                raise self.failure
            if kind == "stopped":
                return
            _, sequence, published, counters = message
            self.counters.update(counters)
            lease, node_id = self.by_sequence.pop(sequence)
            if node_id and not published:
                self.elsewhere.append(node_id)
            self.outstanding[lease] -= 1
            if not self.outstanding[lease]:
                del self.outstanding[lease]
                if lease in self.letting_go:
                    self.letting_go.discard(lease)
                    lease.release()


def serve(conn: Connection, directory: str, durable: bool) -> None:
    """The helper's loop: publish each message in order, acknowledge it, stop when told (or orphaned)."""
    from ..storage.index import Index
    from ..storage.store import Store

    store = Store(directory, durable=durable)
    index = Index(store)
    store.blobs.users = index.blob_users
    store.counters.clear()  # each acknowledgement carries what its own message counted
    conn.send(("ready",))
    lost: set[str] = set()  # states whose lease was lost before their rename: their results are not ours either
    buffers: dict[int, mmap.mmap] = {}  # the parent's shared buffers, by index
    held: dict[str, dict[str, Blob]] = {}  # per state, the blobs of its last checkpoint (the parent names, not sends)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message[0] == "stop":
            conn.send(("stopped",))
            return
        if message[0] == "counts":
            files.crash_counts.update(message[1])
            continue
        if message[0] == "buffer":
            old = buffers.pop(message[1], None)
            if old is not None:
                old.close()
            buffers[message[1]] = receive_buffer(conn, message[2])
            continue
        try:
            kind, sequence, names, *rest = message
            blobs: dict[str, Blob] = {}
            if names:
                data, offset = memoryview(conn.recv_bytes()), 0
                for name, size in names:
                    blobs[name] = Blob(name, data[offset:offset + size], data)
                    offset += size
            if kind == "partial":
                record, buffer, places, named = rest
                node_blobs = held.get(record["id"], {})
                crossed = {name: Blob(name, memoryview(data), data) for name, start, end in places
                           for data in [buffers[buffer][start:end]]}  # copied out: the buffer is reused
                kept = {name: node_blobs[name] for name, _ in named if name in node_blobs}
                store.partials.write(record, {**crossed, **kept},
                                     {name: size for name, size in named if name not in node_blobs})
                held[record["id"]] = {**crossed, **kept}
                published = True
            elif kind == "state":
                record, values, lease_path, token = rest
                held.pop(record["id"], None)
                published = store.publish_state(
                    record, values, _of(record, blobs), index.record_published,
                    lambda: (read_lease(Path(lease_path)) or {}).get("token") == token)
                if not published:
                    lost.add(record["id"])
            else:
                node_id, record, hidden = rest
                published = node_id not in lost
                if published:
                    if hidden is not None:
                        store.results.write_withheld(node_id, hidden, _of(hidden, blobs))
                    store.results.write(node_id, record, _of(record, blobs), lambda r: index.result_written(node_id, r))
            conn.send(("ack", sequence, published, dict(store.counters)))  # what this message counted
            store.counters.clear()
        except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
            conn.send(("error", traceback.format_exc()))
            return


def _of(record: dict[str, Any], blobs: dict[str, Blob]) -> dict[str, Blob]:
    """The blobs a record references that were sent with its message (the others were sent before)."""
    return {name: blobs[name] for name in record["blobs"] if name in blobs}


def _preempt_signal() -> signal.Signals | None:
    """The run's preemption signal (None when there is none, or the setting names none: the run says so)."""
    from .preempt import preempt_signal

    try:
        return preempt_signal()
    except StateDefinitionError:
        return None


def _die_with(parent: int) -> None:
    """Have the kernel kill this process when its parent dies (Linux), and leave now if it already has."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(0)


def main(argv: list[str]) -> None:
    """Entry point of ``python -m prunelab.execution.publisher FD DIRECTORY DURABLE PARENT_PID``."""
    fd, directory, durable, parent = argv
    _die_with(int(parent))
    # Ctrl-C and preemption are the parent's to handle (it checkpoints, then stops us once all is written):
    # a scheduler signals every process of the job, and the helper must outlive the parent's last checkpoint.
    preempt = _preempt_signal()
    for signum in (signal.SIGINT, signal.SIGTERM, *([] if preempt is None else [preempt])):
        signal.signal(signum, signal.SIG_IGN)
    files.ALSO_KILL = int(parent)  # the crash test hook kills the whole run, as when publishing in-process
    serve(Connection(int(fd)), directory, durable == "1")


if __name__ == "__main__":
    main(sys.argv[1:])
