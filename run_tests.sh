#!/usr/bin/env bash
# One command: install what the tests need (Python packages; Debian's chromium if missing), then lint (ruff,
# import-linter layer contracts) and run pytest.
# Extra arguments go to pytest, e.g. `bash run_tests.sh -m "not slow"` or `bash run_tests.sh tests/core`.
set -euo pipefail
cd "$(dirname "$0")"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False PYTHONUNBUFFERED=1
PYTHON="${PYTHON:-python3}"

# torch first and alone, so no other requirement pulls a different build.
"$PYTHON" -m pip install --quiet --disable-pip-version-check "torch==2.14.1" "torchvision==0.29.1"
"$PYTHON" -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt

# The browser tests (tests/browser) drive Debian's chromium through Playwright; nothing downloads a browser.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    echo "== apt-get install chromium (for tests/browser)"
    SUDO=""
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; fi
    { $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
        && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >/dev/null \
        || echo "warning: could not install chromium; tests/browser will fail (see README)" >&2
fi

echo "== ruff"
"$PYTHON" -m ruff check .
echo "== import-linter (layer contracts of docs/ARCHITECTURE.md)"
lint-imports
echo "== pytest"
"$PYTHON" -m pytest "$@"
