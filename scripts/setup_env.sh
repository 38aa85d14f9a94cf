#!/usr/bin/env bash
# Prepares a fresh machine: system libraries for a headless napari viewer (Xvfb, Mesa OpenGL,
# Qt's xcb plugins) and a virtual environment in .venv with the package and its test tools.
# Sourced by scripts/test.sh and scripts/demo.sh; safe to run again (it skips what is there).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

SYSTEM_PACKAGES="xvfb xauth libgl1-mesa-dri libglx-mesa0 libegl1 libxkbcommon-x11-0 libxcb-icccm4
  libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0
  libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 libdbus-1-3 libfontconfig1"
missing=""
for package in $SYSTEM_PACKAGES; do
  dpkg -s "$package" >/dev/null 2>&1 || missing="$missing $package"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "Installing system packages:$missing"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import napari_mesoscale, napari, torch, pytest" 2>/dev/null \
   || [ pyproject.toml -nt .venv/.installed ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # The CPU build of torch for tests; the package itself accepts any torch 2.x.
  .venv/bin/python -m pip install -q "torch==2.13.0"
  .venv/bin/python -m pip install -q -e ".[testing]"
  # The C. elegans data (napari_mesoscale.datasets.celegans reads their files directly);
  # --no-deps because their own imports pull packages the data do not need.
  .venv/bin/python -m pip install -q --no-deps wormneuroatlas c302 cect
  .venv/bin/python -m pip install -q h5py
  touch .venv/.installed
fi
