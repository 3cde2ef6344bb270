#!/usr/bin/env bash
# Freeze the committed code for a long job: `scripts/freeze.sh [DEST]` exports HEAD (git archive:
# code, configs, checkpoints; no uncommitted edits) to DEST (default /tmp/softdimo-frozen/<sha>)
# and records the commit in DEST/FROZEN_COMMIT, which results JSON written from the copy name.
# Run a job from the copy with its own sources first on the path:
#   cd "$(scripts/freeze.sh)" && PYTHONPATH=src /path/to/.venv/bin/python -m softdimo …
set -euo pipefail
cd "$(dirname "$0")/.."
sha=$(git rev-parse HEAD)
dest="${1:-/tmp/softdimo-frozen/$sha}"
if [ ! -f "$dest/FROZEN_COMMIT" ]; then
  mkdir -p "$dest"
  git archive HEAD | tar -x -C "$dest"
  echo "$sha" > "$dest/FROZEN_COMMIT"
fi
echo "$dest"
