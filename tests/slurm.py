"""A real single-node SLURM for the tests: Debian's ``slurm-wlm`` and ``munge``, on 127.0.0.1, as root.

:func:`start` writes a ``slurm.conf`` into a folder of its own (its own
ports, state and spool directories, ``proctrack/linuxproc`` and ``task/none``
so no cgroups are needed), starts ``munged`` if it is not running, then
``slurmctld`` and ``slurmd``, and waits until the node is idle. It returns
None, with the reason, when SLURM cannot start here; the tests skip then.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

# the states of a job that has ended for good (a requeued one passes through REQUEUED and PENDING instead)
REVOKE_S = 3.0  # how long a requeued job is left held before it is released (see wait_until_gone)
ENDED = {"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "BOOT_FAIL", "DEADLINE",
         "OUT_OF_MEMORY", ""}
DAEMONS = ("slurmctld", "slurmd", "munged", "sbatch", "squeue", "scancel", "scontrol")


@dataclass
class Slurm:
    """A running single-node SLURM: its configuration and the environment its commands need."""

    folder: Path
    env: dict[str, str]
    pids: list[Path] = field(default_factory=list)

    def run(self, *command: str, check: bool = True) -> str:
        """Run a SLURM command (``sbatch``, ``squeue`` …) against this cluster; return its output."""
        out = subprocess.run(command, env={**os.environ, **self.env}, capture_output=True, text=True, timeout=60)
        if check and out.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {out.stderr}")
        return out.stdout

    def state(self, job: str) -> str:
        """The job's state (``PENDING``, ``RUNNING``, ``REQUEUED`` …); empty once it has ended.

        Every state is asked for (``--states=all``): squeue's default filter
        shows only pending, running and completing jobs, and a job passing
        through a requeue must not look ended. A failed ``squeue`` (a busy
        controller times out) is asked again, never read as "ended".
        """
        for attempt in range(10):
            out = subprocess.run(["squeue", "-h", f"--jobs={job}", "--states=all", "-o", "%T"],
                                 env={**os.environ, **self.env}, capture_output=True, text=True, timeout=60)
            if out.returncode == 0:
                state = out.stdout.strip()
                return "" if state in ENDED else state
            if "Invalid job id" in out.stderr:  # purged from the controller's memory: long ended
                return ""
            time.sleep(0.5 * (attempt + 1))
        raise RuntimeError(f"squeue fails for job {job}: {out.stderr}\n{self.logs()}")

    def wait_until_gone(self, job: str, timeout: float, release: bool = True) -> None:
        """Wait until ``job`` leaves the queue; a requeued job is made eligible at once with ``release``.

        SLURM holds a requeued job back for two minutes (its BeginTime); a
        test cannot wait that long, so it moves the start time to now.
        """
        deadline = time.monotonic() + timeout
        held_since = None
        while (state := self.state(job)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job} still {state} after {timeout} s:\n{self.logs()}")
            held = state == "PENDING" and "BeginTime" in self.run("squeue", "-h", f"--jobs={job}", "-o", "%r",
                                                                  check=False)
            held_since = (held_since or time.monotonic()) if held else None
            # slurmd revokes the ended run's credential with a time of one-second resolution: a restart
            # allocated within that second is "non-startable: Job credential revoked" and the job fails
            if release and held_since is not None and time.monotonic() - held_since >= REVOKE_S:
                self.run("scontrol", "update", f"JobId={job}", "StartTime=now", check=False)
            time.sleep(0.5)

    def logs(self) -> str:
        """The end of the daemons' logs, for an error message."""
        return "\n".join(f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-15:])
                         for p in sorted((self.folder / "log").glob("*.log")))

    def stop(self) -> None:
        """Cancel every job and stop the daemons this cluster started."""
        self.run("scancel", "--full", "--user", "root", check=False)
        for pid_file in self.pids:
            try:
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
            except (OSError, ValueError):
                pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(folder: Path) -> tuple[Slurm | None, str]:
    """Start a single-node SLURM in ``folder``; return it, or None and why it cannot run here."""
    missing = [d for d in DAEMONS if shutil.which(d) is None]
    if missing:
        return None, f"SLURM is not installed ({', '.join(missing)} missing; apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return None, "the single-node SLURM of the tests runs its daemons as root"
    if not Path("/etc/munge/munge.key").exists():
        return None, "munge has no key (/etc/munge/munge.key); reinstall munge"
    if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode != 0:
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        started = subprocess.run(["munged", "--force"], capture_output=True, text=True)
        if started.returncode != 0:
            return None, f"munged does not start: {started.stderr.strip()}"
    host = socket.gethostname().split(".")[0]
    for sub in ("state", "spool", "log"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    config = folder / "slurm.conf"
    config.write_text("\n".join([
        "ClusterName=prunelab", f"SlurmctldHost={host}(127.0.0.1)", f"SlurmctldPort={_free_port()}",
        f"SlurmdPort={_free_port()}", "SlurmUser=root", "SlurmdUser=root", "AuthType=auth/munge",
        f"StateSaveLocation={folder}/state", f"SlurmdSpoolDir={folder}/spool",
        f"SlurmctldPidFile={folder}/slurmctld.pid", f"SlurmdPidFile={folder}/slurmd.pid",
        f"SlurmctldLogFile={folder}/log/slurmctld.log", f"SlurmdLogFile={folder}/log/slurmd.log",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none", "SelectType=select/cons_tres", "SelectTypeParameters=CR_CPU",
        "ReturnToService=2", "SchedulerType=sched/builtin", "MpiDefault=none", "JobRequeue=1", "KillWait=30",
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count() or 1} RealMemory=8000 State=UNKNOWN",
        "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP", ""]))
    slurm = Slurm(folder, {"SLURM_CONF": str(config)}, [folder / "slurmctld.pid", folder / "slurmd.pid"])
    for daemon in ("slurmctld", "slurmd"):
        started = subprocess.run([daemon, "-f", str(config)], env={**os.environ, **slurm.env}, capture_output=True,
                                 text=True)
        if started.returncode != 0:
            slurm.stop()
            return None, f"{daemon} does not start: {started.stderr.strip()}"
    deadline = time.monotonic() + 30
    while "idle" not in slurm.run("sinfo", "-h", "-o", "%T", check=False):
        if time.monotonic() > deadline:
            why = slurm.logs()
            slurm.stop()
            return None, f"the SLURM node did not come up in 30 s:\n{why}"
        time.sleep(0.3)
    return slurm, ""
