#!/usr/bin/env bash
# Submits `eo-pipeline run` over CONFIG as a SLURM job array, sized from the plan, and a
# finalize job that runs after it whatever happened (afterany). Finalize writes
# OUTPUT/run/report.json and, while tiles are still to do (a task was cancelled or died,
# failed tiles have attempts left), resubmits the tasks that own them, up to
# --max-rounds arrays in all.
#
#   slurm/submit.sh CONFIG [options]
#     --incremental       only the tasks that own tiles to (re)compute: tiles whose inputs,
#                         config or model changed, never ran, or failed with attempts left;
#                         nothing at all when every tile is up to date
#     --tiles-per-task K  size the array: ceil(tiles / K) tasks, at most 1000 (default 16)
#     --array-size N      the array's size, instead of --tiles-per-task
#     --ranks-per-task R  MPI ranks per task, started by mpirun (default 1;
#                         EO_LAUNCHER=srun starts them with srun --mpi=pmix)
#     --max-rounds M      arrays in all, the first one included (default 3)
#     --output DIR        the output folder (overrides the config's)
#     --sbatch "ARGS"     more sbatch options for every job (partition, account, time, ...)
#     --if-idle           when a run of this output is still queued or running, say so and
#                         exit 0 (for cron); without it that is an error (exit 2)
#
# The executable is $EO_PIPELINE, else eo-pipeline on PATH, else this checkout's build.
# Logs go to OUTPUT/slurm/. Prints the job ids; exit 0 when submitted or nothing to do.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { echo "slurm/submit.sh: $*" >&2; exit 2; }

[ $# -ge 1 ] || die "usage: slurm/submit.sh CONFIG [--incremental] [--tiles-per-task K | --array-size N] [--ranks-per-task R] [--max-rounds M] [--output DIR] [--sbatch ARGS] [--if-idle]"
config=$(realpath -e "$1") || die "no config file $1"
shift

incremental=0 if_idle=0 resubmit=0
tiles_per_task=16 array_size= ranks=1 max_rounds=3 output= sbatch_args=
while [ $# -gt 0 ]; do
  case "$1" in
    --incremental) incremental=1 ;;
    --if-idle) if_idle=1 ;;
    --resubmit) resubmit=1 incremental=1 ;;  # by finalize.sbatch: the next round of its chain
    --tiles-per-task) tiles_per_task=${2:?--tiles-per-task needs a number}; array_size=; shift ;;
    --array-size) array_size=${2:?--array-size needs a number}; shift ;;
    --ranks-per-task) ranks=${2:?--ranks-per-task needs a number}; shift ;;
    --max-rounds) max_rounds=${2:?--max-rounds needs a number}; shift ;;
    --output) output=$(realpath -m "${2:?--output needs a folder}"); shift ;;
    --sbatch) sbatch_args=${2?--sbatch needs its options}; shift ;;
    *) die "unknown option $1" ;;
  esac
  shift
done
for n in "$tiles_per_task" "$ranks" "$max_rounds" ${array_size:+"$array_size"}; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "'$n' is not a positive whole number"
done

exe=${EO_PIPELINE:-$(command -v eo-pipeline || echo "$here/../build/pipeline/eo-pipeline")}
exe=$(realpath -e "$exe") || die "no eo-pipeline executable (set EO_PIPELINE)"
command -v sbatch >/dev/null || die "sbatch is not on PATH: run this on a SLURM login node"
output_args=()
[ -z "$output" ] || output_args=(--output "$output")

# Where the tiles stand now, and the tasks of the array that own those to do.
size_args=(--tiles-per-task "$tiles_per_task")
[ -z "$array_size" ] || size_args=(--array-size "$array_size")
tasks= tiles= tiles_todo= model_version= output_dir=
todo=$("$exe" todo "$config" "${output_args[@]}" -q --shell "${size_args[@]}") || die "eo-pipeline todo failed"
while IFS='=' read -r key value; do
  case "$key" in
    EO_ARRAY_SIZE) array_size=$value ;;
    EO_TASKS) tasks=$value ;;
    EO_TILES) tiles=$value ;;
    EO_TILES_TODO) tiles_todo=$value ;;
    EO_MODEL_VERSION) model_version=$value ;;
    EO_OUTPUT_DIR) output_dir=$value ;;
  esac
done <<<"$todo"

# One run of an output at a time: its jobs share a name.
name="eo-$(basename "$output_dir")-$(printf '%s' "$output_dir" | cksum | cut -d' ' -f1)"
active=$(squeue -h -n "$name" -o %A | sort -u | grep -vx "${SLURM_JOB_ID:-none}" | paste -sd, || true)
if [ -n "$active" ]; then
  if [ $if_idle = 1 ]; then
    echo "slurm/submit.sh: a run of $output_dir is still queued or running (jobs $active): nothing submitted"
    exit 0
  fi
  die "a run of $output_dir is still queued or running (jobs $active): wait for it, or scancel it"
fi

if [ $incremental = 1 ]; then
  if [ -z "$tasks" ]; then
    echo "slurm/submit.sh: nothing to do: all $tiles tiles are up to date with their inputs, config and model $model_version"
    exit 0
  fi
  spec=$tasks
else
  spec="0-$((array_size - 1))"
fi

round=1 chain="$(date -u +%Y%m%dT%H%M%SZ)-$$"
if [ $resubmit = 1 ]; then
  round=$((${EO_ROUND:?set by submit.sh} + 1)) chain=${EO_RUN_CHAIN:?set by submit.sh}
fi
logs="$output_dir/slurm"
mkdir -p "$logs"
# What the jobs read (sbatch passes the environment on).
export EO_CONFIG="$config" EO_PIPELINE="$exe" EO_ARRAY_SIZE="$array_size" EO_RANKS_PER_TASK="$ranks"
export EO_MAX_ROUNDS="$max_rounds" EO_OUTPUT="$output" EO_SBATCH_ARGS="$sbatch_args" EO_SLURM_DIR="$here"
export EO_ROUND="$round" EO_RUN_CHAIN="$chain"
read -r -a extra <<<"$sbatch_args"
array_job=$(sbatch --parsable --job-name "$name" --array "$spec" --ntasks "$ranks" --requeue --open-mode=append \
  --output "$logs/%x-%A_%a.out" "${extra[@]}" "$here/array.sbatch")
array_job=${array_job%%;*}
finalize_job=$(sbatch --parsable --job-name "$name" --dependency "afterany:$array_job" --ntasks 1 \
  --output "$logs/%x-finalize-%j.out" "${extra[@]}" "$here/finalize.sbatch")
finalize_job=${finalize_job%%;*}
echo "slurm/submit.sh: round $round of at most $max_rounds: array job $array_job (tasks $spec of $array_size, $tiles_todo of $tiles tiles to do, model $model_version), finalize job $finalize_job; logs in $logs"
echo "EO_ARRAY_JOB=$array_job"
echo "EO_FINALIZE_JOB=$finalize_job"
