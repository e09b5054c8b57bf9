#!/usr/bin/env bash
# mypy over the headcast namespace. The folders server/, models/ and client/ are
# installed as headcast.server etc. (pyproject's package-dir); mypy cannot follow that
# mapping, so it checks a tree of symlinks that spells the installed names.
set -euo pipefail
cd "$(dirname "$0")/.."
MYPY=${MYPY:-.venv/bin/mypy}
tree=.cache/typecheck
rm -rf "$tree"
mkdir -p "$tree/headcast"
for d in server models client; do cp -rs "$PWD/$d" "$tree/headcast/$d"; done
find "$tree" -name __pycache__ -prune -exec rm -rf {} +
MYPYPATH=$tree exec "$MYPY" -p headcast.server -p headcast.models -p headcast.client
