# Sourced: `step NAME COMMAND...` runs COMMAND and, when EO_STEP_TIMES names a file,
# appends "NAME SECONDS" (to the millisecond) to it.
step() {
  local name=$1 start ms
  shift
  start=$(date +%s%N)
  "$@"
  ms=$((($(date +%s%N) - start) / 1000000))
  if [ -n "${EO_STEP_TIMES:-}" ]; then printf '%s %d.%03d\n' "$name" $((ms / 1000)) $((ms % 1000)) >> "$EO_STEP_TIMES"; fi
}
