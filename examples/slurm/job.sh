#!/bin/bash
# A prunelab study as a SLURM job that is requeued when preempted and resumes from its checkpoints.
#
#   sbatch job.sh /shared/runs/lenet [--workers N]
#
# SLURM sends SIGTERM before it kills a job (scancel, preemption) and, with --signal below, before the
# time limit. The shell passes it to the driver, whose training checkpoints and exits with status 75;
# the job then requeues itself and, started again, resumes. Its output is appended across restarts.
#SBATCH --job-name=prunelab
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --signal=B:TERM@120
#SBATCH --time=04:00:00
#SBATCH --cpus-per-task=1

here="${PRUNELAB_EXAMPLE_DIR:-$SLURM_SUBMIT_DIR}"
echo "prunelab job $SLURM_JOB_ID, start $(( ${SLURM_RESTART_COUNT:-0} + 1 )), $(date -Is)"
"${PYTHON:-python3}" "$here/driver.py" "$@" &
driver=$!
trap 'kill -TERM "$driver"' TERM USR1   # the driver checkpoints and stops; wait for it
while true; do
    wait "$driver"
    code=$?
    [ "$code" -le 128 ] && break                       # the driver's own exit status
    if ! kill -0 "$driver" 2>/dev/null; then           # it ended while the trap ran: ask for its status once more
        wait "$driver"
        status=$?
        [ "$status" -ne 127 ] && code=$status
        break
    fi                                                 # a signal interrupted the wait: the driver is still at work
done
echo "driver exited with status $code"
if [ "$code" -eq 75 ]; then             # preempted: run again, from the checkpoints
    for attempt in 1 2 3 4 5; do        # a busy controller may time out; a requeue that works ends this script
        scontrol requeue "$SLURM_JOB_ID" && break
        sleep $(( attempt * 5 ))
    done
fi
exit "$code"
