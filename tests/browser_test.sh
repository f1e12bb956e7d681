#!/usr/bin/env bash
# Browser test of the web page: starts `pneumo serve` over HTTPS (a certificate
# made here with openssl) with an API token, on a free port with a throw-away
# audit database, and runs tests/browser/ui.test.mjs in headless Chromium.
# Exit 77 (skipped) when Chromium, node, playwright-core, the default model or
# ../shared is missing. Screenshots land in tests/browser/screenshots/.
set -u

src="${PNEUMO_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
bin="${PNEUMO_BIN:-}"
browser_dir="$src/tests/browser"
shared="$src/../shared"
chromium="${CHROMIUM:-/usr/bin/chromium}"

skip() { echo "browser_test: SKIP: $*"; exit 77; }
[ -x "$chromium" ] || skip "no Chromium at $chromium"
command -v node >/dev/null || skip "node is not installed"
[ -d "$browser_dir/node_modules/playwright-core" ] || skip "playwright-core missing: run 'cd tests/browser && npm install'"
[ -f "$src/models/default.safetensors" ] || skip "no model at $src/models/default.safetensors"
command -v openssl >/dev/null || skip "openssl is not installed (needed to make the test certificate)"
[ -d "$shared/data/samples_orig" ] || skip "no sample X-rays at $shared/data/samples_orig"
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "browser_test: FAIL: PNEUMO_BIN='$bin' is not an executable pneumo binary"
    exit 1
fi

tmp="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid"
        wait "$server_pid" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# Port 0 makes the kernel choose a free port; the small race until the server binds it is harmless here.
port="$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
url="https://127.0.0.1:$port"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null \
    || { echo "browser_test: FAIL: openssl could not make a certificate"; exit 1; }
token="$(openssl rand -hex 32)"
echo "$token" >"$tmp/tokens"

# From the source dir so the server finds the bundled default model.
(cd "$src" && exec "$bin" serve --port "$port" --audit-db "$tmp/audit.db" --token-file "$tmp/tokens" \
    --tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem") >"$tmp/server.log" 2>&1 &
server_pid=$!

ready=0
for _ in $(seq 1 240); do
    if ! kill -0 "$server_pid" 2>/dev/null; then
        echo "browser_test: FAIL: pneumo serve exited during start-up; its log:"
        cat "$tmp/server.log"
        exit 1
    fi
    if curl -sf --cacert "$tmp/cert.pem" -o /dev/null "$url/healthz"; then
        ready=1
        break
    fi
    sleep 0.25
done
if [ "$ready" != 1 ]; then
    echo "browser_test: FAIL: $url/healthz did not answer within 60 s; server log:"
    cat "$tmp/server.log"
    exit 1
fi

echo "browser_test: pneumo serve is up at $url"
PNEUMO_URL="$url" PNEUMO_TOKEN="$token" PNEUMO_SOURCE_DIR="$src" PNEUMO_SAMPLES_DIR="$shared/data/samples_orig" CHROMIUM="$chromium" \
    node "$browser_dir/ui.test.mjs"
status=$?
if [ "$status" != 0 ]; then
    echo "browser_test: server log:"
    tail -n 50 "$tmp/server.log"
fi
exit "$status"
