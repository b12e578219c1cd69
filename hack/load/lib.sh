# lib.sh: what the load scripts share: settings, cleanup by PID, building the
# binaries, and bench (warm-up, measure with hey, print one line). Sourced by
# run.sh and run-check.sh; not run on its own.
N=${N:-20000}
C=${C:-16}
WARMUP=${WARMUP:-2000}
# hey stops a run that takes longer than this (seconds): the script is bounded.
HEY_TIMEOUT=${HEY_TIMEOUT:-300}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
body="$root/hack/load/body.json"
command -v hey >/dev/null || { echo "$(basename "$0"): hey is missing (Debian package hey; hack/ensure-test-deps.sh installs it)" >&2; exit 1; }

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

(cd "$root" && go build -o "$tmp/detour" ./cmd/detour && go build -o "$tmp/ceiling" ./hack/load/ceiling && go build -o "$tmp/seed" ./hack/load/seed)

# wait_for FILE PATTERN: print the first line of FILE matching PATTERN, within 20 s.
wait_for() {
	for _ in $(seq 200); do
		if line=$(grep -m1 -e "$2" "$1" 2>/dev/null); then
			echo "$line"
			return 0
		fi
		sleep 0.1
	done
	echo "$(basename "$0"): no '$2' in $1 after 20 s:" >&2
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
	ok=$(awk '/\[200\].*responses/ {print $2}' "$out")
	if [ "${ok:-0}" != "$N" ]; then
		echo "$(basename "$0"): $name answered ${ok:-0} of $N requests with 200:" >&2
		cat "$out" >&2
		exit 1
	fi
	rps=$(awk '/Requests\/sec:/ {print $2}' "$out")
	p50=$(awk '/ 50% in / {print $3 * 1000}' "$out")
	p99=$(awk '/ 99% in / {print $3 * 1000}' "$out")
	rss=$(awk '/VmHWM/ {print $2 / 1024}' "/proc/$pid/status")
	local cpu
	cpu=$(echo "($after - $before) * 1000000 / $hz / $N" | bc -l)
	printf '%-8s %10.0f %8.2f %8.2f %10.1f %10.1f %10.1f\n' "$name" "$rps" "$p50" "$p99" \
		"$cpu" "$rss" "$(echo "$(cat "$tmp/$name.anon") / 1024" | bc -l)"
	rm -f "$tmp/$name.anon.stop"
	echo "$rps" >"$tmp/$name.rps"
	echo "$cpu" >"$tmp/$name.cpu"
}

