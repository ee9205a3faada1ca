#!/usr/bin/env bash
# Fails when the committed generated API code differs from what the OpenAPI document generates.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
scripts/generate-api.sh "$tmp"
if ! diff -ru Sources/SkiffAPI/Generated "$tmp" >"$tmp.diff" 2>&1; then
    head -50 "$tmp.diff"
    echo "check-api: Sources/SkiffAPI/Generated is stale: run scripts/generate-api.sh and commit the result"
    rm -f "$tmp.diff"
    exit 1
fi
rm -f "$tmp.diff"
echo "check-api: generated API code matches Sources/SkiffAPI/openapi.yaml"
