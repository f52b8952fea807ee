#!/bin/bash
# slurm/post-run-hook.sh: what a model workflow calls at the end of a run to append the new
# time steps to the run's Zarr store. It submits slurm/convert.sbatch with
# `--append --append-mode skip-existing` as a job that starts when the model job has ended
# successfully, and prints that job's id.
#
# Usage: the arguments are those of `zarrforge convert` (the store and the new files):
#   # at the end of the model's job script (the dependency is on this job):
#   slurm/post-run-hook.sh --concat-dim time -o /scratch/run42.zarr /scratch/run42/out_0042_*.nc
#   # or from a workflow manager, after the model job was submitted:
#   MODEL_JOB=123456 slurm/post-run-hook.sh -o /scratch/run42.zarr '/scratch/run42/out_0042_*.nc'
#
# Safe to fire twice: appends to one store run one at a time (the job name is derived from the
# store's path and the jobs are `singleton`), and an append of steps the store already has is
# skipped (`--append-mode skip-existing`); `--append` to a store that does not exist yet
# creates it. An append that was interrupted is resumed by the next job (see convert.sbatch).
#
# Adapt it:
#   - MODEL_JOB: the job to wait for (default: $SLURM_JOB_ID, the calling job; empty: no wait);
#     it must be known to Slurm (running, pending or recently ended), else the hook refuses;
#   - ZARRFORGE_SBATCH_ARGS: options for the append job, e.g. "-n 8 -t 00:30:00 -p io
#     -o /scratch/logs/append-%j.log" (the report goes next to that log);
#   - ZARRFORGE_SBATCH_SCRIPT: the job script (default: convert.sbatch next to this file);
#   - the environment (ZARRFORGE, ZARRFORGE_SRUN_ARGS, modules) is passed to the job by sbatch.

set -euo pipefail

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
script=${ZARRFORGE_SBATCH_SCRIPT:-$here/convert.sbatch}
model=${MODEL_JOB-${SLURM_JOB_ID:-}}

output=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in
        -o | --output) output=${args[i + 1]:-} ;;
        --output=*) output=${args[i]#--output=} ;;
        -o?*) output=${args[i]#-o} ;;
        --append | --append-mode | --append-mode=*)
            echo "post-run-hook.sh: do not pass ${args[i]}: the hook appends with --append-mode skip-existing" >&2
            exit 2
            ;;
    esac
done
if [ -z "$output" ]; then
    echo "post-run-hook.sh: name the store with -o STORE" >&2
    exit 2
fi

# One name per store (its absolute path): `singleton` runs the appends to a store one at a time.
abs=$(realpath -m -- "$output")
name="zarrforge-append-$(printf '%s' "$abs" | cksum | cut -d ' ' -f 1)"

dependency="singleton"
if [ -n "$model" ]; then
    # Slurm treats `afterok` on a job it does not know (mistyped, or ended more than MinJobAge
    # ago) as satisfied: the append would start at once, whatever became of the model run.
    if ! scontrol show job "$model" >/dev/null 2>&1; then
        echo "post-run-hook.sh: job $model is not known to Slurm (mistyped, or ended long ago): check the model run, then call the hook with MODEL_JOB= to append now" >&2
        exit 1
    fi
    dependency="afterok:$model,singleton"
fi

# shellcheck disable=SC2206 # word splitting of the extra options is intended
extra=(${ZARRFORGE_SBATCH_ARGS:-})
job=$(sbatch --parsable --job-name="$name" --dependency="$dependency" --kill-on-invalid-dep=yes \
    "${extra[@]}" "$script" --append --append-mode skip-existing "$@")
echo "post-run-hook.sh: append job ${job%%;*} for $abs after ${model:-nothing}" >&2
echo "${job%%;*}"
