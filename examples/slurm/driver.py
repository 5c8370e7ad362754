"""Train → prune → finetune LeNet-300-100, as a SLURM job that survives preemption and time limits.

Submit it with ``sbatch job.sh /shared/runs/lenet`` (see job.sh): the job runs
this script; when SLURM signals it (``scancel --signal=TERM``, or the
``--signal`` warning before the time limit), the training in progress
checkpoints, the script exits with status 75 and the job script requeues the
job, which resumes from the checkpoint. The states it stores are bitwise the
ones an uninterrupted run stores.

``--workers N`` computes on N more SLURM jobs (Dask workers through
``dask_jobqueue.SLURMCluster``; this job runs the scheduler), each with its
index on its own local disk. Settings come from the environment:
``EPOCHS`` (default 30), ``REPLICATES`` (3), ``CHECKPOINT_EVERY`` (seconds
between checkpoints within an epoch, default 300), ``DATASET`` (digits),
``SCHEDULER_HOST`` (the address workers reach this job at; Dask's default
otherwise), ``WORKER_MEMORY`` (each worker job's, default 4GB), ``WORKER_LOGS``
(where the worker jobs' output goes). It prints the id and value checksum of every state it made, as JSON.
"""

import argparse
import json
import os
import sys

import prunelab as pl
from prunelab.recipes import ModelState, Prune, Train, evaluate


def declare(exp: pl.Experiment) -> list[pl.Node]:
    epochs = int(os.environ.get("EPOCHS", "30"))
    every = float(os.environ.get("CHECKPOINT_EVERY", "300"))
    ends = []
    for replicate in range(int(os.environ.get("REPLICATES", "3"))):
        root = exp.spawn_new_tree(dataset_name=os.environ.get("DATASET", "digits"), model_name="lenet300100",
                                  replicate=replicate)
        trained = Train(epochs=epochs, lr=0.05, batch_size=64, checkpoint_every=every)(root)
        pruned = Prune(technique="global_magnitude", amount=0.8)(trained)
        ends.append(evaluate(Train(epochs=max(epochs // 2, 1), lr=0.02, batch_size=64, treatment="finetune",
                                   checkpoint_every=every)(pruned)))
    return ends


def executor(workers: int) -> pl.DaskExecutor | None:
    if not workers:
        return None
    from dask_jobqueue import SLURMCluster

    cluster = SLURMCluster(
        cores=1, processes=1, memory=os.environ.get("WORKER_MEMORY", "4GB"), walltime="04:00:00", python=sys.executable,
        job_script_prologue=['export PRUNELAB_INDEX_DIR="${TMPDIR:-/tmp}/prunelab-index-$SLURM_JOB_ID"'],
        scheduler_options={"host": os.environ["SCHEDULER_HOST"]} if os.environ.get("SCHEDULER_HOST") else {},
        log_directory=os.environ.get("WORKER_LOGS"))
    cluster.scale(jobs=workers)
    return pl.DaskExecutor(cluster=cluster)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", help="the experiment directory (on a filesystem every node sees)")
    parser.add_argument("--workers", type=int, default=0, help="Dask workers to start as SLURM jobs (default: none)")
    args = parser.parse_args()
    exp = pl.Experiment(args.directory, ModelState)
    ends = declare(exp)
    exp.run(executor=executor(args.workers))  # preempted: raises pl.Preempted, which exits with status 75
    print(json.dumps({"states": {n.id: n.record["values_checksum"] for n in exp.graph.nodes},
                      "accuracy": [end.results["evaluate"]["test_accuracy"] for end in ends]}))


if __name__ == "__main__":
    main()
