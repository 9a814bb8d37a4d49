#!/usr/bin/env bash
# Create benchmarks/reference/.venv-brian2: a separate virtual environment with Brian2 2.9
# (the simulator of the published Shiu et al. 2024 code), used by compare_brian2.py.
#
# Brian2 2.9 on Python 3.11 needs numpy < 2. The main environment (brainsim, JAX) is not
# touched. Brian2's Cython runtime compiles generated code with the system C compiler (gcc).
#
# Usage: bash benchmarks/reference/setup_brian2.sh [python]   (default: python3)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-brian2"
py="${1:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$py" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "brian2==2.9.*" "numpy<2" "cython" "setuptools"
"$venv/bin/python" - <<'EOF'
import brian2, numpy, sys
print(f"brian2 {brian2.__version__}, numpy {numpy.__version__}, python {sys.version.split()[0]}")
EOF
echo "ready: $venv"
