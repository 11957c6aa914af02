#!/usr/bin/env bash
# Create the RecTools peer venv (RecTools 0.19 SASRec, CPU torch) and install the exact pins of rectools_requirements.txt.
#   bash benchmarks/peers/setup_rectools.sh [VENV]        VENV defaults to .venv-rectools in the repo root
# Idempotent: VENV/.rectools-installed holds the sha256 of the requirements file; if it matches, nothing is done.
# The pins include torch==2.13.0+cpu: pip must find that wheel through its configured index / find-links; where it needs
# another index, pass pip options in RECTOOLS_PIP_ARGS (e.g. RECTOOLS_PIP_ARGS='--extra-index-url URL-of-a-CPU-torch-index').
# PYTHON picks the interpreter (default python3; the pins are for CPython 3.11).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${1:-$root/.venv-rectools}"
req="$here/rectools_requirements.txt"
stamp="$venv/.rectools-installed"
want="$(sha256sum "$req" | cut -d' ' -f1)"

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/python" ]]; then
    echo "RecTools venv up to date: $venv"
    exit 0
fi

test -x "$venv/bin/python" || "${PYTHON:-python3}" -m venv "$venv"
# shellcheck disable=SC2086  # RECTOOLS_PIP_ARGS is a list of pip options
"$venv/bin/python" -m pip install --quiet ${RECTOOLS_PIP_ARGS:-} -r "$req"
"$venv/bin/python" -m pip check
"$venv/bin/python" -c 'import rectools, torch; from rectools.models import SASRecModel; print("rectools", rectools.__version__, "torch", torch.__version__)'
echo "$want" > "$stamp"
echo "RecTools venv ready: $venv"
