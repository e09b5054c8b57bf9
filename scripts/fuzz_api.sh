#!/usr/bin/env bash
# Fuzz the HTTP API from its own OpenAPI document with schemathesis, once without and
# once with an API key, against a real `headcast serve` on 127.0.0.1. Passes when no
# request gets a 5xx (503 with Retry-After, a full server, is an answer) and every answer
# comes within the time limit (no hang); scripts/fuzz_checks.py is the check.
# Usage: scripts/fuzz_api.sh [EXAMPLES_PER_OPERATION]   (default 200; needs `make setup`)
set -euo pipefail
cd "$(dirname "$0")/.."
examples=${1:-200}
venv=.fuzz-venv  # schemathesis lives apart: its pins are not the server's
if [[ ! -x $venv/bin/schemathesis ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q 'schemathesis==4.32.5'
fi
port=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
key=$(.venv/bin/python -c 'import secrets; print(secrets.token_urlsafe(24))')
status=0
for mode in open keyed; do
  env=()
  auth=()
  if [[ $mode == keyed ]]; then
    env=(HEADCAST_SERVE__API_KEY="$key")
    auth=(-H "Authorization: Bearer $key")
  fi
  # sessions the fuzzer opens and never watches close at once, so admission (503 with
  # Retry-After, the documented answer of a full server) does not fill up
  env "${env[@]}" HEADCAST_SERVE__UNCLAIMED_SESSION_TIMEOUT_S=0.5 HEADCAST_SERVE__MAX_SESSIONS=1000 \
    .venv/bin/headcast serve --port "$port" --size 256 \
    >".fuzz-server-$mode.log" 2>&1 &
  server=$!
  for _ in $(seq 120); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
    sleep 1
  done
  echo "== $mode: $examples examples per operation"
  PYTHONPATH=scripts SCHEMATHESIS_HOOKS=fuzz_checks \
    "$venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" "${auth[@]}" \
    --max-examples "$examples" --checks no_server_error --max-response-time 10 \
    --request-timeout 30 --seed 1 || status=1
  kill "$server"
  wait "$server" || true
  if grep -q "Traceback" ".fuzz-server-$mode.log"; then
    echo "the server logged a traceback: .fuzz-server-$mode.log"
    status=1
  fi
done
exit $status
