#!/usr/bin/env bash
# Nightly reprocessing, for cron or scrontab: submits CONFIG's array in incremental mode,
# so that only tiles whose input files, config or model changed since the last run are
# recomputed (a new model writes a new cube of its own). A night on which the last run of
# the output is still queued or running is skipped.
#
#   slurm/nightly.sh CONFIG [slurm/submit.sh options]
#   EO_NIGHTLY_BEFORE: a command run first, for example an `eo-pipeline catalog ...` that
#                      adds the day's new scenes to the catalog
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -ge 1 ] || { echo "usage: slurm/nightly.sh CONFIG [slurm/submit.sh options]" >&2; exit 2; }
echo "$(date -u +%FT%TZ) nightly reprocessing of $1"
if [ -n "${EO_NIGHTLY_BEFORE:-}" ]; then
  bash -c "$EO_NIGHTLY_BEFORE" || { echo "slurm/nightly.sh: EO_NIGHTLY_BEFORE failed: nothing submitted" >&2; exit 1; }
fi
exec "$here/submit.sh" "$1" --incremental --if-idle "${@:2}"
