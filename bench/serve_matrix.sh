#!/usr/bin/env bash
# `pneumo serve` under wrk in four settings: plain HTTP and HTTPS (with an API
# token), each alone and with 256 idle connections held open during the run.
# Usage: bench/serve_matrix.sh [--duration 10s] (options go to serve_load.sh)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
printf '| setting | requests/s | p50 ms | p99 ms | errors | non-2xx | peak RSS MB |\n|---|---|---|---|---|---|---|\n'
for setting in "http" "http --idle 256" "https --tls" "https --tls --idle 256"; do
  name=${setting%% *}
  read -r -a args <<<"${setting#"$name"}"
  case $setting in *idle*) name="$name + 256 idle" ;; esac
  line=$("$here/serve_load.sh" "$@" "${args[@]}" | grep '^serve_load: requests=')
  v() { echo "$line" | sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$(v req_per_s)" "$(v p50_ms)" "$(v p99_ms)" \
    "$(v errors)" "$(v non2xx)" "$(v peak_rss_mb)"
done
