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
# Usage: hack/load/run.sh            (N=20000 C=16 WARMUP=2000 by default)
#        N=50000 C=32 hack/load/run.sh
set -euo pipefail

N=${N:-20000}
C=${C:-16}
WARMUP=${WARMUP:-2000}
# hey stops a run that takes longer than this (seconds): the script is bounded.
HEY_TIMEOUT=${HEY_TIMEOUT:-300}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
body="$root/hack/load/body.json"
command -v hey >/dev/null || { echo "run.sh: hey is missing (Debian package hey; hack/ensure-test-deps.sh installs it)" >&2; exit 1; }

tmp=$(mktemp -d)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

(cd "$root" && go build -o "$tmp/detour" ./cmd/detour && go build -o "$tmp/ceiling" ./hack/load/ceiling)

# wait_for FILE PATTERN: print the first line of FILE matching PATTERN, within 20 s.
wait_for() {
	for _ in $(seq 200); do
		if line=$(grep -m1 -e "$2" "$1" 2>/dev/null); then
			echo "$line"
			return 0
		fi
		sleep 0.1
	done
	echo "run.sh: no '$2' in $1 after 20 s:" >&2
	cat "$1" >&2
	return 1
}

# cpu_ticks PID: utime+stime of the process, in clock ticks.
cpu_ticks() {
	# The fields after the ")" that ends the command name: utime is the 12th, stime the 13th.
	sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'
}

hz=$(getconf CLK_TCK)

# sample_anon PID FILE: until FILE.stop exists, record the largest RssAnon of
# PID (kB) in FILE, every 50 ms. VmHWM counts the binary's own pages too.
sample_anon() {
	local max=0 kb
	while [ ! -e "$2.stop" ]; do
		kb=$(awk '/RssAnon/ {print $2}' "/proc/$1/status")
		[ "$kb" -gt "$max" ] && max=$kb
		sleep 0.05
	done
	echo "$max" >"$2"
}

# bench NAME PID URL: warm up, measure, print one line of results.
bench() {
	local name=$1 pid=$2 url=$3 out="$tmp/$1.hey"
	hey -n "$WARMUP" -c "$C" -m POST -T application/json -D "$body" "$url" >/dev/null
	local before after
	sample_anon "$pid" "$tmp/$name.anon" &
	local sampler=$!
	before=$(cpu_ticks "$pid")
	timeout "$HEY_TIMEOUT" hey -n "$N" -c "$C" -m POST -T application/json -D "$body" "$url" >"$out"
	after=$(cpu_ticks "$pid")
	touch "$tmp/$name.anon.stop"
	wait "$sampler"
	local ok rps p50 p99 rss
	ok=$(awk '/\[200\]/ {print $2}' "$out")
	if [ "${ok:-0}" != "$N" ]; then
		echo "run.sh: $name answered ${ok:-0} of $N requests with 200:" >&2
		cat "$out" >&2
		exit 1
	fi
	rps=$(awk '/Requests\/sec:/ {print $2}' "$out")
	p50=$(awk '/ 50% in / {print $3 * 1000}' "$out")
	p99=$(awk '/ 99% in / {print $3 * 1000}' "$out")
	rss=$(awk '/VmHWM/ {print $2 / 1024}' "/proc/$pid/status")
	printf '%-8s %10.0f %8.2f %8.2f %10.1f %10.1f %10.1f\n' "$name" "$rps" "$p50" "$p99" \
		"$(echo "($after - $before) * 1000000 / $hz / $N" | bc -l)" "$rss" "$(echo "$(cat "$tmp/$name.anon") / 1024" | bc -l)"
	echo "$rps" >"$tmp/$name.rps"
}

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
printf '%-8s %10s %8s %8s %10s %10s %10s\n' server 'req/s' 'p50 ms' 'p99 ms' 'CPU µs/req' 'peak RSS MB' 'anon MB'
bench ceiling "$ceiling_pid" "$ceiling_url"
bench detour "$detour_pid" "$detour_url"
echo "detour/ceiling throughput: $(echo "100 * $(cat "$tmp/detour.rps") / $(cat "$tmp/ceiling.rps")" | bc -l | xargs printf '%.0f')%"
# Stop detour (SIGTERM: graceful, its batched log is flushed) before
# counting its log lines: one per rewritten Pod.
kill "$detour_pid"
wait "$detour_pid" || true
echo "detour log: $(grep -c '"pod images rewritten"' "$tmp/detour.log") lines 'pod images rewritten'"
