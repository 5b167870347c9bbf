#!/usr/bin/env bash
# compare.sh runs the same load-generator workloads against these servers and
# writes the comparison into docs/benchmarks.md:
#
#   switchboard            Switchboard on WebSocket
#   switchboard-longpoll   the same broker on HTTP long-polling (relay only)
#   peerjs                 the PeerJS server (npm package "peer", pinned below)
#   barerelay              the bare gorilla relay of bench/barerelay
#   switchboard-cluster    two Switchboard nodes on one redis-server (cluster
#                          mode), both peers of each pair on the first node
#   switchboard-cluster-across
#                          the same cluster, each pair's receiving peer on
#                          the second node (relay-200 and latency-2000 only,
#                          as the cluster's other case)
#
# and, with BASE set, the code of that git ref too (built in a temporary git
# worktree), run beside the current code on the same workloads, so that
# before-and-after figures come from one run:
#
#   switchboard-base, switchboard-longpoll-base, switchboard-cluster-base,
#   switchboard-cluster-across-base
#
# The servers take turns: for every round and workload each server runs once,
# one after the other, so that a noisy machine disturbs them all alike. Every
# run gets a freshly started server on its own loopback port, which is
# stopped again before the next one starts (the idle workload's memory figure
# needs a fresh process). Each run appends one JSON line, the load
# generator's, with "server", "round", "case", "flags", the run's wall-clock
# seconds ("wall_s") and the CPU seconds the server and the load generator
# used over it ("server_cpu_s", "loadgen_cpu_s") added.
#
# Usage (from anywhere in the repository, or `make compare`):
#
#   bench/compare.sh
#   ROUNDS=1 DURATION=2s IDLE_CONNS=2000 bench/compare.sh   # a quick look
#   BASE=977d422 bench/compare.sh                          # before and after
#   CASES="held-ws held-lp" SERVERS="switchboard switchboard-longpoll" bench/compare.sh
#
# Environment:
#   ROUNDS         rounds of every (server, workload); default 3
#   DURATION       measurement window of the timed workloads; default 5s
#   IDLE_CONNS     connections of the idle workload; default 10000
#   HELD_CONNS     WebSocket connections one node holds (held-ws); default
#                  19500, under the 20,000 open files a process may have
#   LP_HELD_CONNS  long-poll sessions one node holds, a GET waiting each
#                  (held-lp); default 10000
#   HELD_RATE      messages per second to random held peers; default 1000
#   SOURCE_ADDRS   127.0.0.x source addresses the held connections come
#                  from; default 8
#   HELD_CONCURRENCY  dials at once for the held cases; default 64
#   BASE           a git ref: its switchboard runs beside the current one
#                  on every switchboard workload (not the cluster's);
#                  default none
#   CASES          the cases to run, space or comma separated; default all
#                  (see ALL_CASES below)
#   PORT_BASE      first loopback port tried for the servers; default 21000
#   BENCH_TIMEOUT  seconds one load-generator run may take; default 300
#   RESULTS        where the JSON lines are kept; default
#                  bench/results/latest.jsonl
#   SERVERS        the servers to run, space or comma separated; default
#                  all of the above
#   DOC            the Markdown file whose compare section is rewritten;
#                  default docs/benchmarks.md
#
# Needs go, and node and npm for PeerJS, redis-server for the cluster. Everything it starts is stopped when
# it exits, whether it finished, failed or was interrupted.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
IDLE_CONNS=${IDLE_CONNS:-10000}
HELD_CONNS=${HELD_CONNS:-19500}
LP_HELD_CONNS=${LP_HELD_CONNS:-10000}
HELD_RATE=${HELD_RATE:-1000}
SOURCE_ADDRS=${SOURCE_ADDRS:-8}
HELD_CONCURRENCY=${HELD_CONCURRENCY:-64}
BASE=${BASE:-}
PORT_BASE=${PORT_BASE:-21000}
BENCH_TIMEOUT=${BENCH_TIMEOUT:-300}
PEERJS_VERSION=1.0.2

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
RESULTS=${RESULTS:-bench/results/latest.jsonl}
DOC=${DOC:-docs/benchmarks.md}

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "compare: ROUNDS must be a positive integer" >&2; exit 2; }
for v in IDLE_CONNS HELD_CONNS LP_HELD_CONNS HELD_RATE SOURCE_ADDRS HELD_CONCURRENCY; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "compare: $v must be a positive integer" >&2; exit 2; }
done

# The servers, in the order they take turns.
ALL_SERVERS=(switchboard switchboard-longpoll peerjs barerelay switchboard-cluster switchboard-cluster-across)
if [[ -n $BASE ]]; then
	ALL_SERVERS=(switchboard switchboard-base switchboard-longpoll switchboard-longpoll-base peerjs barerelay switchboard-cluster switchboard-cluster-base switchboard-cluster-across switchboard-cluster-across-base)
fi
read -ra SERVERS <<<"${SERVERS:-${ALL_SERVERS[*]}}"
read -ra SERVERS <<<"${SERVERS[*]//,/ }"
for name in "${SERVERS[@]}"; do
	[[ " ${ALL_SERVERS[*]} " == *" $name "* ]] || { echo "compare: unknown server $name (known: ${ALL_SERVERS[*]})" >&2; exit 2; }
done
tools=(go timeout)
if [[ " ${SERVERS[*]} " == *" peerjs "* ]]; then tools+=(node npm); fi
if [[ " ${SERVERS[*]} " == *" switchboard-cluster"* ]]; then tools+=(redis-server); fi
for tool in "${tools[@]}"; do
	command -v "$tool" >/dev/null || { echo "compare: $tool is needed" >&2; exit 2; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/switchboard-compare.XXXXXX")
srv_pid=""    # the server now running, if any
extra_pids=() # the rest of a cluster now running: its second node, redis-server
peer_port=""  # the port of the cluster's second node
bench_pid=""  # the load generator now running, if any
finished=""

log() { printf '%s compare: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# alive reports whether process $1 exists and is not a zombie.
alive() {
	local state
	state=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 1
	[[ $state != Z ]]
}

# stop_pid ends process $1, a child of this shell: TERM, then KILL after
# $2 seconds (default 15), then reaps it.
stop_pid() {
	local pid=$1 grace=${2:-15} i
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < grace * 10; i++)); do
		alive "$pid" || break
		sleep 0.1
	done
	if alive "$pid"; then
		log "process $pid ignored SIGTERM for ${grace}s; killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ -n $bench_pid ]]; then stop_pid "$bench_pid" 5; fi
	if [[ -n $srv_pid ]]; then stop_pid "$srv_pid" 5; fi
	for pid in "${extra_pids[@]}"; do stop_pid "$pid" 5; done
	if [[ -d $tmp/base-src ]]; then
		git worktree remove --force "$tmp/base-src" 2>/dev/null || true
		git worktree prune 2>/dev/null || true
	fi
	if [[ -z $finished && -s $tmp/results.jsonl ]]; then
		mkdir -p "$(dirname "$RESULTS")"
		cp "$tmp/results.jsonl" "$(dirname "$RESULTS")/partial.jsonl"
		log "stopped early; the results so far are in $(dirname "$RESULTS")/partial.jsonl"
	fi
	rm -rf "$tmp"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# json_string prints $1 as a JSON string.
json_string() {
	local s=$1
	s=${s//\\/\\\\}
	s=${s//\"/\\\"}
	s=${s//$'\t'/ }
	s=${s//$'\r'/ }
	s=${s//$'\n'/ }
	s=$(printf '%s' "$s" | tr -d '\000-\037')
	printf '"%s"' "$s"
}

# proc_cpu prints the CPU seconds (user + system, all threads) process $1
# has used so far.
clk_tck=$(getconf CLK_TCK)
proc_cpu() {
	awk -v hz="$clk_tck" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# children_cpu sets children to the CPU seconds used by the children this
# shell has reaped (and theirs), as the times builtin reports them. It must
# run in this shell, not in a $(…) subshell, whose children are others.
children_cpu() {
	times >"$tmp/times"
	children=$(awk 'END { n = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); sub("s", "", a[2]); n += a[1] * 60 + a[2] } printf "%.2f", n }' "$tmp/times")
}

# port_free reports whether nothing accepts connections on loopback port $1.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

next_port=$PORT_BASE
# pick_port sets port to the next free loopback port. Every run gets a new
# one, so connections left in TIME_WAIT by the last run never collide.
pick_port() {
	while ! port_free "$next_port"; do next_port=$((next_port + 1)); done
	port=$next_port
	next_port=$((next_port + 1))
	if ((next_port > 65000)); then next_port=$PORT_BASE; fi
}

# ---------------------------------------------------------------------------
# Build and install.

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
most=$((IDLE_CONNS > HELD_CONNS ? IDLE_CONNS : HELD_CONNS))
if (($(ulimit -Hn) < most + 100)) 2>/dev/null; then
	log "warning: the open-file hard limit ($(ulimit -Hn)) is below $most connections plus headroom"
fi

log "building switchboard, the bare relay and the report into $tmp"
go build -o "$tmp/switchboard" ./cmd/switchboard
go build -o "$tmp/barerelay" ./bench/barerelay/cmd
go build -o "$tmp/report" ./bench/report
base_desc=""
if [[ -n $BASE ]]; then
	base_rev=$(git rev-parse --verify --quiet "$BASE^{commit}") || { echo "compare: BASE=$BASE is not a commit" >&2; exit 2; }
	log "building switchboard at $BASE ($base_rev) in a temporary worktree"
	git worktree add --detach "$tmp/base-src" "$base_rev" >/dev/null 2>&1
	(cd "$tmp/base-src" && go build -o "$tmp/switchboard-base" ./cmd/switchboard)
	git worktree remove --force "$tmp/base-src"
	base_desc="$BASE ($base_rev)"
fi

if [[ " ${SERVERS[*]} " == *" peerjs "* ]]; then
	log "installing the PeerJS server $PEERJS_VERSION"
	npm install --prefix "$tmp/peerjs" --no-audit --no-fund "peer@$PEERJS_VERSION" >"$tmp/npm.log" 2>&1 || {
		cat "$tmp/npm.log" >&2
		exit 1
	}
	peerjs_bin=$tmp/peerjs/node_modules/peer/dist/bin/peerjs.js
	[[ -f $peerjs_bin ]] || { echo "compare: $peerjs_bin is missing after npm install" >&2; exit 1; }
fi

# ---------------------------------------------------------------------------
# Servers.

# bench_flags prints the load generator's protocol flags for server $1.
bench_flags() {
	case $1 in
	switchboard | switchboard-base | switchboard-cluster | switchboard-cluster-base) echo "-protocol switchboard -transport websocket" ;;
	switchboard-cluster-across | switchboard-cluster-across-base) echo "-protocol switchboard -transport websocket -peer-url http://127.0.0.1:$peer_port" ;;
	switchboard-longpoll | switchboard-longpoll-base) echo "-protocol switchboard -transport longpoll" ;;
	peerjs) echo "-protocol peerjs" ;;
	barerelay) echo "-protocol raw" ;;
	esac
}

# serves reports whether server $1 takes part in workload case $2: long-poll
# runs the relay workloads and held-lp, the cluster the cases of its goals,
# WebSocket switchboard every case but held-lp, PeerJS and the bare relay
# the cases of the first comparison; a base server those of its current one.
serves() {
	case ${1%-base}:$2 in
	switchboard-longpoll:relay-* | switchboard-longpoll:held-lp) return 0 ;;
	switchboard-cluster*:*) [[ $2 == relay-200 || $2 == latency-2000 ]] ;;
	switchboard-longpoll:* | *:held-lp) return 1 ;;
	switchboard:*) return 0 ;;
	*:held-*) return 1 ;;
	*) return 0 ;;
	esac
}

# start_cluster starts redis-server and two cluster nodes of binary $1 on
# fresh loopback ports: the first node is srv_pid on port, the second on peer_port; the
# second node and redis-server are extra_pids. It returns once all three
# accept connections.
start_cluster() {
	local bin=$1 redis_port node i pid
	pick_port
	redis_port=$port
	redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
		>>"$tmp/server.log" 2>&1 &
	extra_pids+=($!)
	for ((i = 0; i < 100; i++)); do
		alive "${extra_pids[0]}" || return 1
		port_free "$redis_port" || break
		sleep 0.1
	done
	for node in 2 1; do
		pick_port
		SWITCHBOARD_CLUSTER_REDIS_URL="redis://127.0.0.1:$redis_port/0" \
			SWITCHBOARD_LIMITS_RATE=-1 SWITCHBOARD_LIMITS_JOIN_RATE=-1 SWITCHBOARD_LOG_LEVEL=warn \
			"$bin" serve -listen "127.0.0.1:$port" >>"$tmp/server.log" 2>&1 &
		pid=$!
		if ((node == 2)); then
			extra_pids+=("$pid")
			peer_port=$port
		else
			srv_pid=$pid
		fi
	done
	for ((i = 0; i < 300; i++)); do
		for pid in "$srv_pid" "${extra_pids[@]}"; do alive "$pid" || return 1; done
		if ! port_free "$redis_port" && ! port_free "$peer_port" && ! port_free "$port"; then return 0; fi
		sleep 0.1
	done
	return 1
}

# start_server starts server $1 on a fresh loopback port, sets srv_pid and
# port, and returns once it accepts connections. It tries three ports.
start_server() {
	local name=$1 try i
	for try in 1 2 3; do
		if [[ $name == switchboard-cluster* ]]; then
			local bin=$tmp/switchboard
			if [[ $name == *-base ]]; then bin=$tmp/switchboard-base; fi
			if start_cluster "$bin"; then return 0; fi
			log "the cluster did not come up (try $try); its log ends:"
			tail -n 5 "$tmp/server.log" >&2 || true
			stop_server
			continue
		fi
		pick_port
		case $name in
		switchboard | switchboard-longpoll)
			SWITCHBOARD_LIMITS_RATE=-1 SWITCHBOARD_LIMITS_JOIN_RATE=-1 SWITCHBOARD_LOG_LEVEL=warn \
				"$tmp/switchboard" serve -listen "127.0.0.1:$port" >>"$tmp/server.log" 2>&1 &
			;;
		switchboard-base | switchboard-longpoll-base)
			SWITCHBOARD_LIMITS_RATE=-1 SWITCHBOARD_LIMITS_JOIN_RATE=-1 SWITCHBOARD_LOG_LEVEL=warn \
				"$tmp/switchboard-base" serve -listen "127.0.0.1:$port" >>"$tmp/server.log" 2>&1 &
			;;
		peerjs)
			node "$peerjs_bin" --port "$port" --host 127.0.0.1 --key peerjs --path / \
				--concurrent_limit 20000 >>"$tmp/server.log" 2>&1 &
			;;
		barerelay)
			"$tmp/barerelay" -addr "127.0.0.1:$port" >>"$tmp/server.log" 2>&1 &
			;;
		esac
		srv_pid=$!
		for ((i = 0; i < 300; i++)); do
			if ! alive "$srv_pid"; then break; fi
			if ! port_free "$port"; then return 0; fi
			sleep 0.1
		done
		log "$name did not come up on port $port (try $try); its log ends:"
		tail -n 5 "$tmp/server.log" >&2 || true
		stop_pid "$srv_pid" 5
		srv_pid=""
	done
	return 1
}

stop_server() {
	local pid
	if [[ -n $srv_pid ]]; then
		stop_pid "$srv_pid"
		srv_pid=""
	fi
	for pid in "${extra_pids[@]}"; do stop_pid "$pid"; done
	extra_pids=()
}

# server_cpu prints the CPU seconds the server now running has used so far:
# every process of a cluster, redis-server included.
server_cpu() {
	local pid total=0
	for pid in "$srv_pid" "${extra_pids[@]}"; do
		total=$(awk -v a="$total" -v b="$(proc_cpu "$pid")" 'BEGIN { printf "%.2f", a + b }')
	done
	echo "$total"
}

# ---------------------------------------------------------------------------
# Workloads: a case name, then the load generator's flags. The idle cases
# (idle, held-*) get -server-pid added at run time.

ALL_CASES=(relay-200 relay-1500 latency-2000 latency-8000 setup idle connect held-ws held-lp)
read -ra CASES <<<"${CASES:-${ALL_CASES[*]}}"
read -ra CASES <<<"${CASES[*]//,/ }"

case_flags() {
	case $1 in
	relay-200) echo "-workload relay -pairs 100 -size 200 -duration $DURATION" ;;
	relay-1500) echo "-workload relay -pairs 100 -size 1500 -duration $DURATION" ;;
	latency-2000) echo "-workload latency -pairs 100 -rate 2000 -duration $DURATION" ;;
	latency-8000) echo "-workload latency -pairs 100 -rate 8000 -duration $DURATION" ;;
	setup) echo "-workload setup -pairs 100 -duration $DURATION" ;;
	idle) echo "-workload idle -conns $IDLE_CONNS" ;;
	connect) echo "-workload connect -duration $DURATION" ;;
	held-ws) echo "-workload idle -conns $HELD_CONNS -source-addrs $SOURCE_ADDRS -concurrency $HELD_CONCURRENCY -sample-rate $HELD_RATE -duration $DURATION" ;;
	held-lp) echo "-workload idle -conns $LP_HELD_CONNS -source-addrs $SOURCE_ADDRS -concurrency $HELD_CONCURRENCY -sample-rate $HELD_RATE -duration $DURATION" ;;
	*) return 1 ;;
	esac
}
for case in "${CASES[@]}"; do
	case_flags "$case" >/dev/null || { echo "compare: unknown case $case (known: ${ALL_CASES[*]})" >&2; exit 2; }
done

# case_fields prints the JSON fields that identify case $1 when its run
# failed and the load generator printed nothing.
case_fields() {
	case $1 in
	relay-*) echo "\"workload\":\"relay\",\"size\":${1#relay-}" ;;
	latency-*) echo "\"workload\":\"latency\",\"rate\":${1#latency-}" ;;
	held-*) echo "\"workload\":\"idle\"" ;;
	*) echo "\"workload\":\"$1\"" ;;
	esac
}

# run_one runs case $3 against server $2 in round $1 and appends its line.
run_one() {
	local round=$1 name=$2 case=$3 flags line rc msg srv_cpu gen_cpu children started wall pid
	if ! start_server "$name"; then
		msg="server did not start"
		printf '{"server":"%s","round":%d,%s,"case":"%s","failed":%s}\n' \
			"$name" "$round" "$(case_fields "$case")" "$case" "$(json_string "$msg")" >>"$tmp/results.jsonl"
		log "round $round $name $case: FAILED: $msg"
		return
	fi
	flags="$(case_flags "$case") $(bench_flags "$name")"
	# shellcheck disable=SC2086 # flags are words
	set -- -url "http://127.0.0.1:$port" $flags
	if [[ $case == idle || $case == held-* ]]; then set -- "$@" -server-pid "$srv_pid"; fi
	srv_cpu=$(server_cpu)
	children_cpu
	gen_cpu=$children
	started=$(date +%s.%N)
	timeout -k 10 "$BENCH_TIMEOUT" "$tmp/switchboard" bench "$@" >"$tmp/bench.out" 2>"$tmp/bench.err" &
	bench_pid=$!
	rc=0
	wait "$bench_pid" || rc=$?
	bench_pid=""
	# CPU time over the whole load-generator run (dialing, warm-up, window
	# and wind-down), of the server and of the load generator.
	srv_cpu=$(awk -v a="$srv_cpu" -v b="$(server_cpu)" 'BEGIN { printf "%.2f", b - a }')
	children_cpu
	gen_cpu=$(awk -v a="$gen_cpu" -v b="$children" 'BEGIN { printf "%.2f", b - a }')
	wall=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
	local crashed=""
	alive "$srv_pid" || crashed=1
	for pid in "${extra_pids[@]}"; do alive "$pid" || crashed=1; done
	stop_server
	line=$(tail -n 1 "$tmp/bench.out")
	if [[ -n $crashed ]]; then
		msg="the server exited during the run; its log ends: $(tail -n 3 "$tmp/server.log")"
		printf '{"server":"%s","round":%d,%s,"case":"%s","flags":%s,"failed":%s}\n' \
			"$name" "$round" "$(case_fields "$case")" "$case" "$(json_string "$flags")" \
			"$(json_string "$msg")" >>"$tmp/results.jsonl"
		log "round $round $name $case: FAILED: $msg"
	elif ((rc == 0)) && [[ $line == '{'* ]]; then
		printf '{"server":"%s","round":%d,"case":"%s","flags":%s,"wall_s":%s,"server_cpu_s":%s,"loadgen_cpu_s":%s,%s\n' \
			"$name" "$round" "$case" "$(json_string "$flags")" "$wall" "$srv_cpu" "$gen_cpu" "${line#\{}" >>"$tmp/results.jsonl"
		log "round $round $name: $(tail -n 1 "$tmp/bench.err")"
	else
		msg=$(tail -n 1 "$tmp/bench.err")
		((rc == 124)) && msg="timed out after ${BENCH_TIMEOUT}s; $msg"
		printf '{"server":"%s","round":%d,%s,"case":"%s","flags":%s,"failed":%s}\n' \
			"$name" "$round" "$(case_fields "$case")" "$case" "$(json_string "$flags")" \
			"$(json_string "exit $rc: $msg")" >>"$tmp/results.jsonl"
		log "round $round $name $case: FAILED (exit $rc): $msg"
	fi
}

# ---------------------------------------------------------------------------
# The run.

command="ROUNDS=$ROUNDS DURATION=$DURATION IDLE_CONNS=$IDLE_CONNS HELD_CONNS=$HELD_CONNS LP_HELD_CONNS=$LP_HELD_CONNS HELD_RATE=$HELD_RATE SOURCE_ADDRS=$SOURCE_ADDRS"
if [[ -n $BASE ]]; then command+=" BASE=$BASE"; fi
if [[ ${CASES[*]} != "${ALL_CASES[*]}" ]]; then command+=" CASES=\"${CASES[*]}\""; fi
if [[ ${SERVERS[*]} != "${ALL_SERVERS[*]}" ]]; then command+=" SERVERS=\"${SERVERS[*]}\""; fi
command+=" bench/compare.sh"
cpu=$(sed -n 's/^model name[[:space:]]*: *//p' /proc/cpuinfo | head -n 1)
printf '{"meta":{"date":"%s","nproc":%d,"cpu":%s,"command":%s,"rounds":%d,"duration":%s,"go":%s,"node":%s,"peerjs":"%s","kernel":%s,"base":%s}}\n' \
	"$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(nproc)" "$(json_string "${cpu:-unknown}")" \
	"$(json_string "$command")" "$ROUNDS" "$(json_string "$DURATION")" \
	"$(json_string "$(go env GOVERSION)")" "$(json_string "$(node --version 2>/dev/null || echo none)")" \
	"$PEERJS_VERSION" "$(json_string "$(uname -r)")" "$(json_string "$base_desc")" >"$tmp/results.jsonl"

total=0
for case in "${CASES[@]}"; do
	for name in "${SERVERS[@]}"; do
		if serves "$name" "$case"; then total=$((total + 1)); fi
	done
done
log "$ROUNDS rounds of $total runs each, DURATION=$DURATION"

for ((round = 1; round <= ROUNDS; round++)); do
	for case in "${CASES[@]}"; do
		for name in "${SERVERS[@]}"; do
			if serves "$name" "$case"; then run_one "$round" "$name" "$case"; fi
		done
	done
done

mkdir -p "$(dirname "$RESULTS")"
cp "$tmp/results.jsonl" "$RESULTS"
finished=1
log "results in $RESULTS"
"$tmp/report" -doc "$DOC" "$RESULTS"
log "wrote the comparison into $DOC"
if grep -q '"failed"' "$RESULTS"; then
	log "some runs failed; see the notes in $DOC"
	exit 1
fi
