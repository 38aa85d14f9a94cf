#!/usr/bin/env bash
# Runs the main job on the bundled sample data and writes its layers and a screenshot to
# ./demo_output (opens napari with the layers instead when a display is present and --show
# is given). Installs what a fresh machine lacks first.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup_env.sh
if [ -z "${DISPLAY:-}" ]; then
  exec xvfb-run -a -s "-screen 0 1600x1200x24" .venv/bin/napari-mesoscale demo --output demo_output "$@"
fi
exec .venv/bin/napari-mesoscale demo --output demo_output "$@"
