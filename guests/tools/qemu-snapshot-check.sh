#!/usr/bin/env bash
# Saves a running guest of the kit under QEMU to a file mid-run (QMP `migrate` to
# "exec:cat > FILE"), restores it in a new QEMU (`-incoming "exec:cat FILE"`) and checks
# that the guest carried on from where it was.
#
#   tools/qemu-snapshot-check.sh [-a kvm|tcg] [-M pc|q35] [-m MiB] [-c CMDLINE] [-b LINES]
#                                [-n LINES] [-t SECONDS] [-k] [-V]
#     -a  accelerator (default: kvm if /dev/kvm is usable, else tcg)
#     -M  machine (default pc)         -m  guest RAM in MiB (default 64)
#     -c  workload command line (default "report=1000"; see src/workload.c)
#     -b  progress lines to wait for before saving (default 5)
#     -n  progress lines to wait for after restoring (default 5)
#     -t  timeout in seconds for each wait (default 60)
#     -k  keep the work directory (logs, state file)
#     -V  vmgenid instead: vmgenid.elf with `-device vmgenid,guid=auto` on both sides and
#         stop=changes:1; the restored guest must report a new GUID and pass
#
# workload (default): the combined serial output of both VMs (the source's, then the
# destination's; a line cut by the save is joined) must hold `WL seq=` lines at K, 2K, 3K,
# ... with no gap and no repeat, at least one from each side, no FAIL line, and hashes equal
# to a recomputation (when the last seq is at most 3,000,000). Prints one summary line:
#   snapshot-check ok: seq <last before> -> <first after> (K=<k>, <n> hashes recomputed),
#   state <bytes> bytes, save <ms> ms (downtime <ms> ms), restore to first line <ms> ms
# Exit status 0 if the check passed, 1 if it failed, 2 on a setup problem.
# Needs qemu-system-x86_64 and python3; builds the kit first.
set -u
cd "$(dirname "$0")/.."

accel=""
machine=pc
mem=64
cmdline="report=1000"
before=5
after=5
timeout_s=60
keep=0
vmgenid=0
while getopts "a:M:m:c:b:n:t:kV" opt; do
    case $opt in
        a) accel=$OPTARG ;;
        M) machine=$OPTARG ;;
        m) mem=$OPTARG ;;
        c) cmdline=$OPTARG ;;
        b) before=$OPTARG ;;
        n) after=$OPTARG ;;
        t) timeout_s=$OPTARG ;;
        k) keep=1 ;;
        V) vmgenid=1 ;;
        *) sed -n '2,25p' "$0"; exit 2 ;;
    esac
done
if [ -z "$accel" ]; then
    if [ -w /dev/kvm ]; then accel=kvm; else accel=tcg; fi
fi
command -v qemu-system-x86_64 > /dev/null || { echo "qemu-system-x86_64 not found"; exit 2; }
command -v python3 > /dev/null || { echo "python3 not found"; exit 2; }
make -s all || exit 2

work=$(mktemp -d /tmp/skiff-snapshot.XXXXXX)
src_pid=""
dst_pid=""
cleanup() {
    for p in $src_pid $dst_pid; do kill "$p" 2> /dev/null; done
    if [ "$keep" = 1 ]; then echo "files in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

if [ "$vmgenid" = 1 ]; then
    kernel=build/vmgenid.elf
    cmdline="stop=changes:1"
    extra=(-device vmgenid,guid=auto)
else
    kernel=build/workload.elf
    extra=()
fi
Q=(qemu-system-x86_64 -accel "$accel" -M "$machine" -m "$mem" -display none -monitor none -net none
   -device isa-debug-exit,iobase=0xf4,iosize=0x04 -kernel "$kernel" -append "$cmdline" "${extra[@]}")

# qmp SOCKET JSON: one command on a fresh QMP connection; prints the "return" (or error) as JSON.
qmp() {
    python3 - "$1" "$2" << 'EOF'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rw")
def reply():
    while True:
        m = json.loads(f.readline())
        if "return" in m or "error" in m:
            return m
json.loads(f.readline())  # greeting
f.write(json.dumps({"execute": "qmp_capabilities"}) + "\n"); f.flush(); reply()
f.write(sys.argv[2] + "\n"); f.flush()
print(json.dumps(reply()))
EOF
}

now_ms() { date +%s%3N; }

# wait_for FILE PATTERN COUNT PID: until COUNT lines of FILE match PATTERN (grep -E), the
# process exits, or the timeout. 0 if reached.
wait_for() {
    local deadline=$(( $(date +%s) + timeout_s ))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        [ -f "$1" ] && [ "$(tr -d '\r' < "$1" | grep -cE "$2")" -ge "$3" ] && return 0
        kill -0 "$4" 2> /dev/null || return 1
        sleep 0.05
    done
    return 1
}

if [ "$vmgenid" = 1 ]; then progress='^VMGENID addr='; before=1; else progress='WL seq='; fi

# ---- source ----------------------------------------------------------------------
"${Q[@]}" -chardev file,id=ser,path="$work/src.log" -serial chardev:ser \
    -qmp unix:"$work/src.qmp",server=on,wait=off > "$work/src.stderr" 2>&1 &
src_pid=$!
if ! wait_for "$work/src.log" "$progress" "$before" "$src_pid"; then
    echo "snapshot-check: the source did not print $before progress line(s)"; cat "$work/src.log" "$work/src.stderr"; exit 1
fi
t_save=$(now_ms)
r=$(qmp "$work/src.qmp" "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"exec:cat > $work/state\"}}")
case "$r" in *error*) echo "snapshot-check: migrate: $r"; exit 2 ;; esac
status=""
for _ in $(seq 1 $((timeout_s * 20))); do
    info=$(qmp "$work/src.qmp" '{"execute": "query-migrate"}')
    status=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["return"].get("status", ""))' "$info")
    [ "$status" = completed ] || [ "$status" = failed ] && break
    sleep 0.05
done
t_saved=$(now_ms)
if [ "$status" != completed ]; then echo "snapshot-check: migration $status: $info"; exit 1; fi
downtime=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["return"].get("downtime", "?"))' "$info")
qmp "$work/src.qmp" '{"execute": "quit"}' > /dev/null 2>&1
wait "$src_pid" 2> /dev/null
src_pid=""
state_bytes=$(stat -c %s "$work/state")

# ---- destination -------------------------------------------------------------------
t_restore=$(now_ms)
"${Q[@]}" -chardev file,id=ser,path="$work/dst.log" -serial chardev:ser \
    -qmp unix:"$work/dst.qmp",server=on,wait=off -incoming "exec:cat $work/state" > "$work/dst.stderr" 2>&1 &
dst_pid=$!
if [ "$vmgenid" = 1 ]; then
    wait "$dst_pid"
    rc=$?
    dst_pid=""
    if [ "$rc" = 33 ] && grep -q '^VMGENID changed guid=' "$work/dst.log"; then
        old=$(tr -d '\r' < "$work/src.log" | sed -n 's/^.*VMGENID addr=0x[0-9a-f]* guid=//p')
        new=$(sed -n 's/^VMGENID changed guid=//p' "$work/dst.log")
        if [ -n "$old" ] && [ "$old" != "$new" ]; then
            echo "snapshot-check ok: vmgenid $old -> $new, state $state_bytes bytes, save $((t_saved - t_save)) ms (downtime $downtime ms)"
            exit 0
        fi
    fi
    echo "snapshot-check FAILED: exit $rc"; cat "$work/src.log" "$work/dst.log" "$work/dst.stderr"; exit 1
fi
first_ms=""
deadline=$(( $(date +%s) + timeout_s ))
while [ "$(date +%s)" -lt "$deadline" ]; do
    n=$(grep -c 'WL seq=' "$work/dst.log" 2> /dev/null)
    [ -z "$first_ms" ] && [ "${n:-0}" -ge 1 ] && first_ms=$(( $(now_ms) - t_restore ))
    [ "${n:-0}" -ge "$after" ] && break
    grep -q 'SKIFF-TEST' "$work/dst.log" 2> /dev/null && break
    kill -0 "$dst_pid" 2> /dev/null || break
    sleep 0.05
done
qmp "$work/dst.qmp" '{"execute": "quit"}' > /dev/null 2>&1
wait "$dst_pid" 2> /dev/null
dst_pid=""

python3 - "$work/src.log" "$work/dst.log" "$cmdline" "$state_bytes" "$((t_saved - t_save))" "$downtime" "${first_ms:-?}" << 'EOF'
import re, sys
src_path, dst_path, cmdline, state, save_ms, downtime, first_ms = sys.argv[1:8]
def clean(b):
    t = b.decode("latin-1").replace("\r", "")
    t = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", t)
    return re.sub(r"^.*Booting from ROM\.\.", "", t, flags=re.M)
src, dst = clean(open(src_path, "rb").read()), clean(open(dst_path, "rb").read())
text = src + dst
boundary = len(src)
opts = dict(kv.split("=", 1) for kv in cmdline.split() if "=" in kv)
K = int(opts.get("report", "1000"))
stop = int(opts.get("stop", "0"))
problems = []
if "SKIFF-TEST FAIL" in text:
    problems.append("FAIL line: " + text[text.index("SKIFF-TEST FAIL"):].split("\n")[0])
m = re.search(r"^WL tsc-khz=\d+ pages=(\d+) dirty=\S+$", text, re.M)
if not m:
    problems.append("no WL tsc-khz line")
pages = int(m.group(1)) if m else 0
seqs = []  # (seq, hash, from destination)
pos = 0
for line in text.split("\n"):
    start, pos = pos, pos + len(line) + 1
    mm = re.fullmatch(r"WL seq=(\d+) hash=([0-9a-f]{16})", line)
    if mm:
        seqs.append((int(mm.group(1)), mm.group(2), pos - 1 > boundary))
    elif line.startswith("WL") and pos <= len(text) and not re.fullmatch(r"WL (tsc-khz=.*|verify seq=\d+ ok|heartbeat n=\d+)", line):
        problems.append("unexpected line %r" % line)
for i, (s, _, _) in enumerate(seqs):
    want = (i + 1) * K
    if s != want and not (stop and s == stop and i == len(seqs) - 1 and s < want):
        problems.append("line %d has seq=%d, expected %d (gap or repeat)" % (i + 1, s, want))
        break
before = [s for s, _, d in seqs if not d]
after = [s for s, _, d in seqs if d]
if not before:
    problems.append("no progress line before the save")
if not after:
    problems.append("no progress line after the restore")
hashes = "hashes not recomputed (seq above 3000000)"
if seqs and pages and seqs[-1][0] <= 3000000:
    M = (1 << 64) - 1
    def mix(x):
        z = (x + 0x9e3779b97f4a7c15) & M
        z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M
        z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M
        return z ^ (z >> 31)
    want = {s: h for s, h, _ in seqs}
    h, checked = 0xcbf29ce484222325, 0
    for s in range(seqs[-1][0]):
        p = (mix(s) >> 32) % pages
        for w in (s & 0xffffffff, s >> 32, p):
            h = ((h ^ w) * 0x100000001b3) & M
        if s + 1 in want:
            checked += 1
            if want[s + 1] != "%016x" % h:
                problems.append("seq=%d hash=%s, expected %016x" % (s + 1, want[s + 1], h))
                break
    hashes = "%d hashes recomputed" % checked
if problems:
    print("snapshot-check FAILED: " + "; ".join(problems))
    sys.exit(1)
print("snapshot-check ok: seq %d -> %d (K=%d, %s), state %s bytes, save %s ms (downtime %s ms), restore to first line %s ms"
      % (before[-1], after[0], K, hashes, state, save_ms, downtime, first_ms))
EOF
