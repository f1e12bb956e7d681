#!/usr/bin/env bash
# Crash safety of the audit log, black-box: `pneumo serve` is killed with
# SIGKILL while wrk posts images to it (loopback only), three times over the
# same database. Every acknowledged prediction (HTTP 200 whose body carries
# an audit id) must be in the database afterwards, as the row of that very
# upload (its image's SHA-256: each round posts a different image, so a row
# id reused after a lost row is caught), and the database must pass
# PRAGMA integrity_check. A restarted server must keep logging on it.
# Skips (77) without models/default.safetensors, wrk or sqlite3.
set -euo pipefail
src=${PNEUMO_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
bin=${PNEUMO_BIN:-$src/build/pneumo}
model=$src/models/default.safetensors
skip() { echo "SKIP: $*"; exit 77; }
[ -f "$model" ] || skip "$model does not exist yet (train or install a model first)"
command -v wrk >/dev/null || skip "wrk is not installed (scripts/install-deps.sh test)"
command -v sqlite3 >/dev/null || skip "the sqlite3 shell is not installed (scripts/install-deps.sh test)"
[ -x "$bin" ] || { echo "FAIL: no pneumo binary at $bin"; exit 1; }

tmp=$(mktemp -d /tmp/pneumo-serve-kill.XXXXXX)
server_pid= wrk_pid=
cleanup() {
  [ -n "$wrk_pid" ] && kill "$wrk_pid" 2>/dev/null
  [ -n "$server_pid" ] && kill -KILL "$server_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; for f in "$tmp"/server.*.log; do [ -f "$f" ] && sed "s|^|  $(basename "$f"): |" "$f"; done; exit 1; }
db=$tmp/audit.db
# Three small synthetic images (no dataset needed), one per round.
images=("$src/tests/fuzz/corpus/image/gray.jpg" "$src/tests/fuzz/corpus/image/rgb-444.jpg"
        "$src/tests/fuzz/corpus/image/gray8.png")
types=(image/jpeg image/jpeg image/png)

# wrk records each acknowledged prediction as "<audit id> <label>" the moment
# it has parsed the answer (one unbuffered write per line).
cat > "$tmp/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = os.getenv("KILL_TEST_TYPE")
local f = assert(io.open(os.getenv("KILL_TEST_IMAGE"), "rb"))
wrk.body = f:read("*a")
f:close()
local acks
function init(args)
  acks = assert(io.open(os.getenv("KILL_TEST_ACKS"), "a"))
  acks:setvbuf("no")
end
function response(status, headers, body)
  if status ~= 200 then return end
  local audit = body:match('"audit":(%b{})')
  local id = audit and audit:match('"id":(%d+)')
  local label = body:match('"label":"([%u%-]+)"')
  acks:write(string.format("%s %s\n", id or "none", label or "none"))
end
LUA

start_server() { # start_server ROUND: sets server_pid and port
  "$bin" serve --model "$model" --host 127.0.0.1 --port 0 --audit-db "$db" --threads 1 \
      2>"$tmp/server.$1.log" &
  server_pid=$!
  port=
  for _ in $(seq 1 600); do
    port=$(sed -n 's|.*http://127.0.0.1:\([0-9]*\)/.*|\1|p' "$tmp/server.$1.log" | head -1)
    [ -n "$port" ] && return 0
    kill -0 "$server_pid" 2>/dev/null || fail "server exited at startup (round $1)"
    sleep 0.1
  done
  fail "server did not start (round $1)"
}

for round in 0 1 2; do
  start_server $round
  acks=$tmp/acks.$round
  : > "$acks"
  KILL_TEST_IMAGE=${images[$round]} KILL_TEST_TYPE=${types[$round]} KILL_TEST_ACKS=$acks \
    wrk -t2 -c4 -d120s -s "$tmp/post.lua" "http://127.0.0.1:$port/api/v1/predict" > "$tmp/wrk.$round.log" 2>&1 &
  wrk_pid=$!
  # Kill once some predictions are acknowledged (at a point that varies by round).
  want=$((10 + 7 * round))
  for _ in $(seq 1 1200); do
    [ "$(wc -l < "$acks")" -ge $want ] && break
    kill -0 "$server_pid" 2>/dev/null || fail "server died under load (round $round)"
    sleep 0.05
  done
  [ "$(wc -l < "$acks")" -ge $want ] || fail "fewer than $want predictions acknowledged (round $round)"
  kill -KILL "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  server_pid=
  sleep 1 # answers already in flight to wrk are recorded
  kill -INT "$wrk_pid" 2>/dev/null || true
  wait "$wrk_pid" 2>/dev/null || true
  wrk_pid=
  [ -e "$db-wal" ] || echo "note: no WAL file left behind in round $round"
  check=$(sqlite3 "$db" 'PRAGMA integrity_check;') || fail "sqlite3 cannot open the database after SIGKILL"
  [ "$check" = ok ] || fail "integrity_check after round $round: $check"
  echo "round $round: killed after $(wc -l < "$acks") acknowledged predictions; integrity_check ok"
done

# Every acknowledged id is the row of the image that round posted.
sqlite3 -separator ' ' "$db" 'SELECT id, image_sha256, label FROM predictions ORDER BY id;' > "$tmp/rows"
total=0
for round in 0 1 2; do
  sha=$(sha256sum "${images[$round]}" | cut -d' ' -f1)
  while read -r id label; do
    [ "$id" != none ] || fail "a 200 answer without an audit id (round $round)"
    row=$(awk -v id="$id" '$1 == id' "$tmp/rows")
    [ -n "$row" ] || fail "acknowledged prediction $id (round $round) is missing from the audit log"
    [ "$row" = "$id $sha $label" ] || fail "row $id is '$row', not the round-$round upload '$sha $label'"
    total=$((total + 1))
  done < "$tmp/acks.$round"
done
[ $total -gt 0 ] || fail "nothing was acknowledged"

# The database keeps working: a restarted server logs a new row after the old ones.
start_server 3
max_before=$(sqlite3 "$db" 'SELECT max(id) FROM predictions;')
reply=$(curl -s -H 'Content-Type: image/jpeg' --data-binary @"${images[0]}" "http://127.0.0.1:$port/api/v1/predict")
id=$(printf '%s' "$reply" | sed -n 's/.*"audit":{"logged":true,"id":\([0-9]*\)}.*/\1/p')
[ -n "$id" ] && [ "$id" -gt "$max_before" ] || fail "restarted server did not log a new row: $reply"
kill -TERM "$server_pid"
wait "$server_pid" || fail "restarted server did not shut down cleanly"
server_pid=
[ "$(sqlite3 "$db" 'PRAGMA integrity_check;')" = ok ] || fail "integrity_check after the clean restart"
echo "PASS: $total acknowledged predictions over 3 SIGKILLs, all in the audit log; $(wc -l < "$tmp/rows") rows"
