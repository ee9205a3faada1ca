#!/usr/bin/env bash
# Checks skiffd's responses against the OpenAPI document with schemathesis: a daemon on a
# scratch directory with a TCP listener, a short property-based run over every operation
# (status codes, content types and bodies must be what the document says; no 5xx but the
# documented monitor/storage ones). Prints "N passed, M failed" like a test runner.
# SKIFF_ST_PHASES=examples,coverage,fuzzing adds the (long) fuzzing phase.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${SKIFF_VENV:-$PWD/.venv-schemathesis}"
if [ ! -x "$venv/bin/st" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "schemathesis==4.32.5"
fi
bin="$(swift build --show-bin-path)"
dir="$(mktemp -d /tmp/skiff-st-XXXXXX)"
port=$((20000 + RANDOM % 20000))
token="conformance-token-$RANDOM$RANDOM"
echo "$token" > "$dir/token"
"$bin/skiffd" --socket "$dir/s.sock" --data-dir "$dir/data" --run-dir "$dir/run" --monitor "$bin/skiff-vmm" \
    --tcp "127.0.0.1:$port" --token-file "$dir/token" --no-auto-balloon >"$dir/skiffd.log" 2>&1 &
daemon=$!
cleanup() {
    # VMs outlive skiffd by design: end the monitors of every VM the run made (forks included).
    curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$port/vms" 2>/dev/null \
        | python3 -c 'import json,sys; [print(v["pid"]) for v in json.load(sys.stdin) if v.get("pid")]' 2>/dev/null \
        | while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done
    kill "$daemon" 2>/dev/null || true
    wait "$daemon" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
for _ in $(seq 100); do
    curl -sf -o /dev/null -H "Authorization: Bearer $token" "http://127.0.0.1:$port/vms" && break
    sleep 0.1
done
# A VM that exists and runs, so the per-VM operations meet real states too; it honours the
# power button, so a generated stop with a long timeout does not hold its other requests.
cat > "$dir/vm.json" <<JSON
{"name": "conform", "kernel": "$PWD/guests/build/power-button.elf", "memory": "32M"}
JSON
curl -sf -o /dev/null -H "Authorization: Bearer $token" -H "Content-Type: application/json" \
    --data @"$dir/vm.json" "http://127.0.0.1:$port/vms?start=true"
status=0
"$venv/bin/st" run Sources/SkiffAPI/openapi.yaml --url "http://127.0.0.1:$port" -H "Authorization: Bearer $token" \
    --checks status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
    --exclude-operation-id listEvents --max-examples "${SKIFF_ST_EXAMPLES:-15}" --request-timeout 30 --phases "${SKIFF_ST_PHASES:-examples,coverage}" \
    --no-color >"$dir/st.log" 2>&1 || status=$?
tail -40 "$dir/st.log"
[ -n "${SKIFF_ST_LOG:-}" ] && cp "$dir/st.log" "$SKIFF_ST_LOG"
# Events stream JSON lines; checked on their own without follow.
events="$(curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$port/events")"
bad=0
while IFS= read -r line; do
    [ -z "$line" ] && continue
    python3 -c 'import json,sys; e=json.loads(sys.argv[1]); assert set(e) <= {"id","time","vm","kind","message"} and {"id","time","kind","message"} <= set(e)' "$line" || bad=$((bad + 1))
done <<< "$events"
if [ "$status" -eq 0 ] && [ "$bad" -eq 0 ]; then
    echo "api-conformance: 2 passed, 0 failed"
else
    echo "api-conformance: $(( (status == 0) + (bad == 0) )) passed, $(( (status != 0) + (bad != 0) )) failed"
    exit 1
fi
