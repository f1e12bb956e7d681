#!/bin/sh
# The container image's command: pneumo serve, its options from the
# environment (README, "Deploy"). PNEUMO_SERVE_OPTS holds any other options,
# split on spaces (e.g. --token-file /run/secrets/pneumo-tokens).
set -eu
# shellcheck disable=SC2086 # PNEUMO_SERVE_OPTS is a list of options
exec pneumo serve --host "${PNEUMO_HOST:-0.0.0.0}" --port "${PNEUMO_PORT:-8080}" \
  --audit-db "${PNEUMO_AUDIT_DB:-/var/lib/pneumo/audit.db}" ${PNEUMO_SERVE_OPTS:-} "$@"
