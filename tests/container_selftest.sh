#!/usr/bin/env bash
# Runs inside the container image's test stage (Containerfile, `--target test`),
# as the image's non-root user: predicts the first image in DIR with the bundled
# model, then starts the image's command (pneumo-container-serve) on a free port
# with its environment, asks /healthz (the HEALTHCHECK's request) and predicts
# the same image through the API; the audit log must be in the volume.
# Usage: container_selftest.sh DIR
set -euo pipefail
dir=${1:?usage: container_selftest.sh DIR}
fail() { echo "FAIL: $*" >&2; [ -f /tmp/serve.log ] && sed 's/^/  server: /' /tmp/serve.log >&2; exit 1; }

[ "$(id -u)" != 0 ] || fail "the image runs as root"
img=$(find "$dir" -type f \( -name '*.jpeg' -o -name '*.jpg' -o -name '*.png' -o -name '*.dcm' \) 2>/dev/null | sort | head -n 1)
[ -n "$img" ] || fail "no image in $dir: mount a folder with an X-ray at $dir (podman build -v DIR:$dir:ro)"

# --force: a synthetic test image is refused as out-of-distribution without it.
pneumo predict --force --format csv "$img" > /tmp/predict.csv || fail "pneumo predict $img"
cat /tmp/predict.csv
grep -Eq ',(NORMAL|PNEUMONIA),' /tmp/predict.csv || fail "pneumo predict printed no label"

server_pid=
trap '[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; true' EXIT
PNEUMO_HOST=127.0.0.1 PNEUMO_PORT=0 pneumo-container-serve 2>/tmp/serve.log &
server_pid=$!
port=
for _ in $(seq 1 600); do
  port=$(sed -n 's|.*http://127.0.0.1:\([0-9]*\)/.*|\1|p' /tmp/serve.log | head -n 1)
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || fail "the server exited at startup"
  sleep 0.1
done
[ -n "$port" ] || fail "the server did not start"
curl -fsS "http://127.0.0.1:$port/healthz" | grep -q '"ok"' || fail "/healthz"
curl -fsS -F "file=@$img" "http://127.0.0.1:$port/api/v1/predict?force=1" > /tmp/answer.json ||
  fail "POST /api/v1/predict"
grep -Eq '"label": *"(NORMAL|PNEUMONIA)"' /tmp/answer.json && grep -q '"probability":' /tmp/answer.json || fail "API answer: $(head -c 400 /tmp/answer.json)"
kill -TERM "$server_pid"
wait "$server_pid" || fail "the server did not stop cleanly on SIGTERM"
server_pid=
[ -s "$PNEUMO_AUDIT_DB" ] || fail "no audit database at $PNEUMO_AUDIT_DB"
echo "container self-test passed: predict, /healthz and the API as uid $(id -u), port $port"
