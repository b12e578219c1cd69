#!/usr/bin/env bash
# run.sh: loopback load test of `detour serve` against a do-nothing HTTPS
# server (hack/load/ceiling) that answers a fixed AdmissionReview: the ceiling
# of this machine. Both get the same load from Debian's `hey` in the same run:
#
#   hey -n $N -c $C -m POST -T application/json -D hack/load/body.json https://127.0.0.1:PORT/mutate
#
# body.json is a 5.8 KB AdmissionReview of a Pod made by a Deployment (3
# images, env, probes, volumes, managedFields) that detour rewrites, so every
# request takes the full path: decode, three rewrites, patch, and a log line.
# detour runs on its embedded default config with a self-signed certificate
# and logs to a file, as in a cluster.
#
# Printed for each server: requests/s, p50 and p99 latency, CPU time per
# request (utime+stime from /proc/PID/stat over the measured run, so hey's own
# CPU is not counted), peak RSS (VmHWM) and, of it, the largest anonymous part
# seen during the run (RssAnon sampled every 50 ms; the rest of VmHWM is the
# binary's own code and data pages). Then detour's share of the
# ceiling's throughput. A warm-up of $WARMUP requests precedes each
# measurement. Both servers listen on 127.0.0.1 only, on ports they pick, and
# are stopped by PID.
#
# With ROUNDS above 1, both are measured in each round, their order swapped
# from round to round (so drift over the run falls on both), and the medians
# over the rounds are printed at the end: on a small shared machine one run
# can be 20 % off.
#
# Usage: hack/load/run.sh            (ROUNDS=1 N=20000 C=16 WARMUP=2000 by default)
#        ROUNDS=7 hack/load/run.sh
#        N=50000 C=32 hack/load/run.sh
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# detour, self-signed, embedded default config, JSON log to a file.
"$tmp/detour" serve --listen 127.0.0.1:0 --probe-listen 127.0.0.1:0 2>"$tmp/detour.log" &
pids+=($!)
detour_pid=$!
serving=$(wait_for "$tmp/detour.log" '"msg":"serving"')
detour_url=$(echo "$serving" | sed 's/.*"webhook":"\([^"]*\)".*/\1/')
probe_url=$(echo "$serving" | sed 's/.*"probes":"\([^"]*\)".*/\1/')
curl -sf "$probe_url/readyz" >/dev/null

# The ceiling answers what detour answers to body.json.
curl -sfk -H 'Content-Type: application/json' --data-binary @"$body" "$detour_url" >"$tmp/response.json"
grep -q '"patch"' "$tmp/response.json" || { echo "run.sh: detour did not patch body.json: $(cat "$tmp/response.json")" >&2; exit 1; }
"$tmp/ceiling" -listen 127.0.0.1:0 -response "$tmp/response.json" >"$tmp/ceiling.log" 2>&1 &
pids+=($!)
ceiling_pid=$!
ceiling_url="https://$(wait_for "$tmp/ceiling.log" 'listening on' | awk '{print $3}')/mutate"

echo "hey -n $N -c $C -m POST -T application/json -D hack/load/body.json ($(wc -c <"$body") bytes), $(nproc) CPUs, $(go version | awk '{print $3}')"
ROUNDS=${ROUNDS:-1}
ratios=() cpus=() ceilings=()
for round in $(seq "$ROUNDS"); do
	[ "$ROUNDS" = 1 ] || echo "round $round"
	printf '%-8s %10s %8s %8s %10s %10s %10s\n' server 'req/s' 'p50 ms' 'p99 ms' 'CPU µs/req' 'peak RSS MB' 'anon MB'
	if [ $((round % 2)) = 1 ]; then
		bench ceiling "$ceiling_pid" "$ceiling_url"
		bench detour "$detour_pid" "$detour_url"
	else
		bench detour "$detour_pid" "$detour_url"
		bench ceiling "$ceiling_pid" "$ceiling_url"
	fi
	ratio=$(echo "100 * $(cat "$tmp/detour.rps") / $(cat "$tmp/ceiling.rps")" | bc -l | xargs printf '%.0f')
	echo "detour/ceiling throughput: $ratio%"
	ratios+=("$ratio") cpus+=("$(cat "$tmp/detour.cpu")") ceilings+=("$(cat "$tmp/ceiling.cpu")")
done
if [ "$ROUNDS" != 1 ]; then
	median() { python3 -c 'import statistics,sys; v=[float(x) for x in sys.argv[1:]]; print(f"{statistics.median(v):.1f} (range {min(v):.1f} .. {max(v):.1f})")' "$@"; }
	echo "medians over $ROUNDS rounds: detour/ceiling throughput $(median "${ratios[@]}") %," \
		"detour CPU $(median "${cpus[@]}") µs/req, ceiling CPU $(median "${ceilings[@]}") µs/req," \
		"detour peak RSS $(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$detour_pid/status") MB"
fi
# Stop detour (SIGTERM: graceful, its batched log is flushed) before
# counting its log lines: one per rewritten Pod.
kill "$detour_pid"
wait "$detour_pid" || true
echo "detour log: $(grep -c '"pod images rewritten"' "$tmp/detour.log") lines 'pod images rewritten'"
