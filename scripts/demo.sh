#!/usr/bin/env bash
# The demo: set up, build, and run the main job on the embedded demo config
# (scripts/demo_steps.sh says what it runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
bash scripts/demo_steps.sh "$@"
