#!/usr/bin/env bash
# Regenerates Sources/SkiffAPI/Generated from Sources/SkiffAPI/openapi.yaml with
# swift-openapi-generator, built on its own in tools/openapi (the main package never compiles
# the generator). `scripts/generate-api.sh DIR` writes into DIR instead (scripts/check-api.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-Sources/SkiffAPI/Generated}"
swift build --package-path tools/openapi --product swift-openapi-generator -q
gen="$(swift build --package-path tools/openapi --show-bin-path)/swift-openapi-generator"
mkdir -p "$out"
"$gen" generate Sources/SkiffAPI/openapi.yaml --config Sources/SkiffAPI/openapi-generator-config.yaml \
    --output-directory "$out" >/dev/null
