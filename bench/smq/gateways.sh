#!/usr/bin/env bash
# Side-by-side throughput of two Kafka gateways over ONE SeaweedFS (SMQ) stack, with Apache Kafka's own
# perf tools: SeaweedFS's Go gateway (`weed mq.kafka.gateway`) and Kelp with its SMQ backend.
#
#   bench/smq/gateways.sh [--kelp-embedded] [--kelp-via-shim] [--no-go] [--no-kelp]
#
#   --kelp-embedded  a third column: Kelp with its embedded log (no SMQ)
#   --kelp-via-shim  route Kelp through the same kafka_shim.py the Go gateway needs (see below), to see
#                    what the shim costs; by default Kelp is measured directly
#   --no-go / --no-kelp  leave one out
#
# Per gateway: a fresh topic with KELP_BENCH_PARTITIONS partitions; kafka-producer-perf-test
# (org.apache.kafka.tools.ProducerPerformance) sends KELP_BENCH_RECORDS records of KELP_BENCH_RECORD_SIZE
# bytes with acks=all, then (KELP_BENCH_ACKS1=1) as many again with acks=1, --throughput -1, the
# producer's defaults otherwise; kafka-consumer-perf-test (ConsumerPerformance) reads KELP_BENCH_RECORDS
# back from the beginning in a new group. The consume rate is the fetch rate (ConsumerPerformance's
# fetch.nMsg.sec / fetch.MB.sec): the group join is left out and shown on its own line. With
# KELP_BENCH_PYTHON (a Python with confluent-kafka), librdkafka does the same through bench/loadgen.py:
# KELP_BENCH_RECORDS more records at acks=all, as many at acks=1 (with KELP_BENCH_ACKS1=1), then reads
# KELP_BENCH_RECORDS from the start. Per gateway process (not the shared weed server): RSS once it
# listens, peak RSS and CPU seconds over all its phases.
#
# Kelp: KELP_BIN (default target/release/kelp) with `--backend smq://127.0.0.1:<broker port>`. A kelp that
# has no --backend flag, or refuses the smq:// value, is measured with its embedded backend instead and
# the report says so.
#
# The Go gateway (SeaweedFS 4.53) cannot serve Kafka 4.4 clients by itself: it answers their ApiVersions
# v5 with a malformed error, and with -ip set it advertises port 9093 whatever -port says. Its clients
# go through kafka_shim.py (ApiVersions v5 sent as v4, advertised port rewritten). Its topic is created
# through SMQ (`weed shell` mq.topic.configure, namespace `kafka`): its auto-create needs a schema
# registry subject. -schema-registry-url is required by its command line; it points at registry_stub.py,
# an empty registry (KELP_BENCH_GO_REGISTRY=none: at a port where nothing listens, which costs the
# gateway a refused connection per produced record and roughly halves its rates). The perf tools keep
# their default client ids: with short ones the gateway misreads some group requests (see README).
#
# Everything listens on 127.0.0.1, on free ports below 32768 (weed's gRPC ports are its HTTP ports
# + 10000), never weed's or Kafka's defaults. State lives in one temp dir, removed at exit with every
# process started here (KELP_BENCH_KEEP=1 keeps the dir and prints it).
#
# Environment:
#   KELP_BENCH_RECORDS (200000)  KELP_BENCH_RECORD_SIZE (1024)  KELP_BENCH_PARTITIONS (3)
#   KELP_BENCH_ACKS1 (1: also produce with acks=1; 0: skip)
#   KELP_BENCH_PYTHON (unset: no librdkafka phases; bench/run.sh sets its venv's python)
#   KELP_BENCH_RD_CONSUME_CAP_S (20: a librdkafka read stops after that many seconds of reading and
#   reports the rate of what it read; the Go gateway's 200k records took 62 s)
#   KELP_BENCH_PHASE_TIMEOUT (150 s per perf-tool run)  KELP_BENCH_BUDGET (480 s for the whole run:
#   phases that would start past it are skipped)  KELP_BENCH_KEEP (0)
#   KELP_BENCH_GO_REGISTRY (stub | none)
#   KELP_BENCH_RESULTS (a file: the figures as tab-separated lines, for bench/run.py)
#   KELP_BIN, KELP_WEED_BIN (default: scripts/smq/build-weed.sh's cached binary), KELP_CACHE
#   (~/.cache/kelp-tests; the Kafka 4.4.0 jars of `tests/install.sh kafka` in $KELP_CACHE/kafka/libs)
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

usage() { sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }

with_embedded=0 kelp_via_shim=0 run_go=1 run_kelp=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --kelp-embedded) with_embedded=1 ;;
        --kelp-via-shim) kelp_via_shim=1 ;;
        --no-go) run_go=0 ;;
        --no-kelp) run_kelp=0 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "gateways.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

RECORDS="${KELP_BENCH_RECORDS:-200000}"
SIZE="${KELP_BENCH_RECORD_SIZE:-1024}"
PARTITIONS="${KELP_BENCH_PARTITIONS:-3}"
ACKS1="${KELP_BENCH_ACKS1:-1}"
RD_PYTHON="${KELP_BENCH_PYTHON:-}"
PHASE_TIMEOUT="${KELP_BENCH_PHASE_TIMEOUT:-150}"
RD_CONSUME_CAP_S="${KELP_BENCH_RD_CONSUME_CAP_S:-20}"
BUDGET="${KELP_BENCH_BUDGET:-480}"
KEEP="${KELP_BENCH_KEEP:-0}"
REGISTRY="${KELP_BENCH_GO_REGISTRY:-stub}"
CACHE="${KELP_CACHE:-$HOME/.cache/kelp-tests}"
LIBS="$CACHE/kafka/libs"
KELP_BIN="${KELP_BIN:-$root/target/release/kelp}"
LOG4J="$root/tests/clients/kafka/log4j2-tools.yaml"
KAFKA_SH="$root/tests/clients/kafka/kafka.sh"

say() { echo "[bench $(( SECONDS - t0 ))s] $*" >&2; }
die() { echo "gateways.sh: $*" >&2; exit 1; }
t0=$SECONDS

for n in RECORDS SIZE PARTITIONS PHASE_TIMEOUT BUDGET RD_CONSUME_CAP_S; do
    [[ "${!n}" =~ ^[1-9][0-9]*$ ]] || die "KELP_BENCH_$n must be a positive integer (got '${!n}')"
done
command -v java >/dev/null || die "java not found (tests/install.sh system)"
command -v python3 >/dev/null || die "python3 not found (the Go gateway's shim needs it)"
[[ -d "$LIBS" ]] || die "$LIBS missing: run tests/install.sh kafka"
if [[ $run_kelp == 1 || $with_embedded == 1 ]]; then
    [[ -x "$KELP_BIN" ]] || die "no kelp binary at $KELP_BIN (cargo build --release -p kelp-tokio, or set KELP_BIN)"
fi
weed="${KELP_WEED_BIN:-}"
if [[ -z "$weed" ]]; then weed="$("$root/scripts/smq/build-weed.sh" 2>/dev/null | tail -n 1)"; fi
[[ -x "$weed" ]] || die "no weed binary at '$weed' (scripts/smq/build-weed.sh, or set KELP_WEED_BIN)"

work="$(mktemp -d "${TMPDIR:-/tmp}/kelp-bench-smq.XXXXXX")"

# ---------------------------------------------------------------------------------------------------
# Processes and cleanup

weed_pid="" gw_pid="" shim_pid="" reg_pid="" kelp_pid="" cur_pid="" sockets=() wshell_out=""

stop_pid() { # PID GRACE_SECONDS: SIGTERM, then SIGKILL after the grace period
    local pid="$1" grace="$2" i
    [[ -n "$pid" ]] || return 0
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    kill -TERM "$pid" 2>/dev/null
    for (( i = 0; i < grace * 10; i++ )); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

cleanup() {
    trap - EXIT INT TERM
    stop_pid "$cur_pid" 3
    stop_pid "$kelp_pid" 5
    stop_pid "$shim_pid" 1
    stop_pid "$gw_pid" 5
    stop_pid "$reg_pid" 1
    # The data is thrown away: no need to wait out weed's slow SIGTERM (10-15 s).
    stop_pid "$weed_pid" 3
    rm -f "${sockets[@]}"
    if [[ "$KEEP" == 1 ]]; then echo "gateways.sh: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------------
# Free ports: below the ephemeral range, not in use; weed's HTTP ports also need port + 10000 (gRPC).

taken=" $(ss -Htan 2>/dev/null | awk '{print $4}' | sed 's/.*://' | sort -un | tr '\n' ' ') "
in_use() { [[ "$taken" == *" $1 "* ]] || (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() { # VAR [grpc]: a free port in VAR (with grpc: port + 10000 free too)
    local p i
    for (( i = 0; i < 500; i++ )); do
        p=$(( 20000 + RANDOM % 2700 ))
        in_use "$p" && continue
        if [[ "${2:-}" == grpc ]]; then in_use $(( p + 10000 )) && continue; taken+="$(( p + 10000 )) "; fi
        taken+="$p "
        printf -v "$1" '%s' "$p"
        return 0
    done
    die "no free port found"
}
pick_port master_port grpc; pick_port volume_port grpc; pick_port filer_port grpc; pick_port broker_port
pick_port go_port; pick_port shim_port; pick_port registry_port
pick_port kelp_port; pick_port kelp_shim_port; pick_port embedded_port
sockets=(
    "/tmp/seaweedfs-master-grpc-$(( master_port + 10000 )).sock"
    "/tmp/seaweedfs-volume-grpc-$(( volume_port + 10000 )).sock"
    "/tmp/seaweedfs-filer-grpc-$(( filer_port + 10000 )).sock"
)

wait_port() { # PORT PID SECONDS: 0 once PORT accepts connections, 1 if PID exits or time runs out
    local port="$1" pid="$2" i
    for (( i = 0; i < $3 * 10; i++ )); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

tail_log() { # FILE [N]: the last lines of a log, indented, without colour codes
    echo "    --- last lines of $1:"
    tail -n "${2:-25}" "$1" 2>/dev/null | sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^/    | /' | cut -c1-240
}

# ---------------------------------------------------------------------------------------------------
# The perf tools

JAVA_OPTS=(-Xms256m -Xmx1g -Dlog4j2.configurationFile="$LOG4J")

phase_time() { # seconds the next phase may take: PHASE_TIMEOUT, less if the budget runs out sooner
    local left=$(( BUDGET - (SECONDS - t0) - 20 ))
    (( left > PHASE_TIMEOUT )) && left=$PHASE_TIMEOUT
    echo "$left"
}

run_limited() { # OUT_FILE SECONDS CMD...: CMD's exit status (124: timed out). In the background, so that
    # Ctrl-C is handled at once (bash runs traps only between foreground commands) and cleanup stops it.
    local out="$1" secs="$2" rc
    shift 2
    timeout -k 5 "$secs" "$@" >"$out" 2>&1 </dev/null &
    cur_pid=$!
    wait "$cur_pid"; rc=$?
    cur_pid=""
    return "$rc"
}

run_java() { # OUT_FILE SECONDS MAIN_CLASS ARGS...: the tool's exit status (124: timed out)
    local out="$1" secs="$2" main="$3"
    shift 3
    run_limited "$out" "$secs" java "${JAVA_OPTS[@]}" -cp "$LIBS/*" "$main" "$@"
}

declare -A res=()     # "<gateway>:<metric>" -> number
declare -A detail=()  # "<gateway>:<phase>" -> the tool's summary, or why there is none

fail_phase() { # GW PHASE WHY OUT_FILE
    detail["$1:$2"]="FAILED: $3"
    say "$1 $2: FAILED: $3"
    tail_log "$4" 15 >&2
}

produce() { # GW BOOTSTRAP TOPIC ACKS: 0 on success
    local gw="$1" bs="$2" topic="$3" acks="$4" out="$work/$1-produce-acks$4.txt" secs line rc
    secs=$(phase_time)
    if (( secs < 10 )); then detail["$gw:acks$acks"]="skipped (time budget)"; return 1; fi
    say "$gw: producing $RECORDS x $SIZE B, acks=$acks (at most ${secs}s)"
    run_java "$out" "$secs" org.apache.kafka.tools.ProducerPerformance --bootstrap-server "$bs" \
        --topic "$topic" --num-records "$RECORDS" --record-size "$SIZE" --throughput -1 \
        --command-property acks="$acks"
    rc=$?
    line="$(grep -E "^$RECORDS records sent, .* 50th" "$out" | tail -n 1)"
    if [[ $rc != 0 || -z "$line" ]]; then
        fail_phase "$gw" "acks$acks" "$( [[ $rc == 124 ]] && echo "timed out after ${secs}s" || echo "exit $rc" )" "$out"
        return 1
    fi
    local errors
    errors=$(grep -c 'Exception' "$out")
    res["$gw:acks$acks:msgs"]="$(sed -E 's/^[0-9]+ records sent, ([0-9.]+) records\/sec.*/\1/' <<<"$line")"
    res["$gw:acks$acks:mb"]="$(sed -E 's/.*records\/sec \(([0-9.]+) MB\/sec\).*/\1/' <<<"$line")"
    detail["$gw:acks$acks"]="$line$( (( errors > 0 )) && echo " [$errors exception lines in the tool's output]")"
    say "$gw acks=$acks: ${res["$gw:acks$acks:msgs"]} msg/s, ${res["$gw:acks$acks:mb"]} MB/s"
    return 0
}

consume() { # GW BOOTSTRAP TOPIC: 0 on success. Up to 3 tries, each in a new group: the Go gateway's
    # group coordination fails now and then (see README), and the consume rate is what is measured here.
    local gw="$1" bs="$2" topic="$3" out="$work/$1-consume.txt" secs line rc try why="" f
    for try in 1 2 3; do
        secs=$(phase_time)
        if (( secs < 10 )); then detail["$gw:consume"]="skipped (time budget)${why:+; before: $why}"; return 1; fi
        say "$gw: consuming $RECORDS records (at most ${secs}s)${why:+, try $try}"
        run_java "$out" "$secs" org.apache.kafka.tools.ConsumerPerformance --bootstrap-server "$bs" \
            --topic "$topic" --num-records "$RECORDS" --timeout 30000 --group "bench-$gw-$try-$RANDOM"
        rc=$?
        # start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec,
        # rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
        line="$(grep -E '^[0-9]{4}-[0-9]{2}-[0-9]{2} .*, .*, ' "$out" | tail -n 1)"
        f=()
        [[ -n "$line" ]] && IFS=',' read -r -a f <<<"${line// /}"
        # f: 0 start, 1 end, 2 MB, 3 MB/s, 4 nMsg, 5 msg/s, 6 rebalance ms, 7 fetch ms, 8 fetch MB/s,
        #    9 fetch msg/s
        if [[ $rc == 0 && ${#f[@]} -ge 10 ]] && (( ${f[4]%.*} >= RECORDS )); then
            res["$gw:consume:msgs"]="${f[9]}"
            res["$gw:consume:mb"]="${f[8]}"
            detail["$gw:consume"]="${f[4]} records, ${f[2]} MB in ${f[7]} ms of fetching (${f[9]} msg/s, ${f[8]} MB/s); group join ${f[6]} ms; overall incl. join ${f[5]} msg/s${why:+; try $try, before: $why}"
            say "$gw consume: ${f[9]} msg/s, ${f[8]} MB/s (join ${f[6]} ms)"
            return 0
        fi
        local err
        err="$(grep -m1 -E 'Exception|Error|error' "$out" | cut -c1-160)"
        if [[ $rc == 124 ]]; then err="timed out after ${secs}s"
        elif [[ ${#f[@]} -ge 5 ]]; then err="read ${f[4]} of $RECORDS records${err:+ ($err)}"
        else err="exit $rc${err:+: $err}"; fi
        why="${why:+$why; }try $try: $err"
        say "$gw consume: try $try failed: $err"
        # Only the Go gateway's group flakes are worth another try (see README); anything else is final.
        grep -q -E 'SyncGroup|JoinGroup|group id is invalid' "$out" || break
    done
    fail_phase "$gw" consume "$why" "$out"
    return 1
}

rd_phase() { # GW PHASE LOADGEN_ARGS...: bench/loadgen.py (librdkafka) with LOADGEN_ARGS; 0 on success.
    # A produce phase must have every record acknowledged, a consume phase must read them all (or
    # read for RD_CONSUME_CAP_S seconds: then its rate is of what it read by then).
    local gw="$1" ph="$2" out="$work/$1-$2.txt" secs rc json fields
    shift 2
    secs=$(phase_time)
    if (( secs < 10 )); then detail["$gw:$ph"]="skipped (time budget)"; return 1; fi
    say "$gw: librdkafka $* (at most ${secs}s)"
    run_limited "$out" "$secs" "$RD_PYTHON" "$root/bench/loadgen.py" "$@"
    rc=$?
    json="$(tail -n 1 "$out")"
    # records failed rate mb_s, or nothing if the last line is not the generator's JSON
    fields="$(python3 -c 'import json, sys
try: d = json.loads(sys.argv[1])
except ValueError: sys.exit(0)
print(d.get("records", 0), d.get("failed", 0), d.get("rate", 0), d.get("mb_s", 0), int(d.get("capped", False)))' "$json" 2>/dev/null)"
    local records failed rate mb capped
    read -r records failed rate mb capped <<<"$fields"
    if [[ $rc != 0 || -z "$fields" ]] || (( (records < RECORDS && capped == 0) || failed > 0 )); then
        fail_phase "$gw" "$ph" "$( [[ $rc == 124 ]] && echo "timed out after ${secs}s" || echo "exit $rc${fields:+, $records records, $failed failed}" )" "$out"
        return 1
    fi
    res["$gw:$ph:msgs"]="$rate"
    res["$gw:$ph:mb"]="$mb"
    detail["$gw:$ph"]="$json"
    say "$gw $ph: $(printf '%.0f' "$rate") msg/s, $(printf '%.1f' "$mb") MB/s"
    return 0
}

rss_mib() { # PID: the process's VmRSS (or with 'peak' as $2, VmHWM) in MiB
    awk -v k="$( [[ "${2:-}" == peak ]] && echo VmHWM || echo VmRSS ):" '$1 == k { printf "%.1f", $2 / 1024 }' \
        "/proc/$1/status" 2>/dev/null
}

cpu_s() { # PID: user + system CPU seconds of the process so far
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat" 2>/dev/null
}

bench_gateway() { # GW BOOTSTRAP TOPIC PID: the produce and consume phases; PID is the gateway's process
    local gw="$1" bs="$2" topic="$3" pid="$4" cpu0
    res["$gw:rss_idle:msgs"]="$(rss_mib "$pid")"
    cpu0="$(cpu_s "$pid")"
    produce "$gw" "$bs" "$topic" all || true
    if [[ "$ACKS1" == 1 ]]; then produce "$gw" "$bs" "$topic" 1 || true; fi
    consume "$gw" "$bs" "$topic" || true
    if [[ -n "$RD_PYTHON" ]]; then
        rd_phase "$gw" rdall produce "$bs" "$topic" "$RECORDS" "$SIZE" all || true
        if [[ "$ACKS1" == 1 ]]; then rd_phase "$gw" rdacks1 produce "$bs" "$topic" "$RECORDS" "$SIZE" 1 || true; fi
        rd_phase "$gw" rdconsume consume "$bs" "$topic" "$RECORDS" "$RD_CONSUME_CAP_S" || true
    fi
    res["$gw:rss_peak:msgs"]="$(rss_mib "$pid" peak)"
    local cpu1
    cpu1="$(cpu_s "$pid")"
    if [[ -n "$cpu0" && -n "$cpu1" ]]; then res["$gw:cpu_s:msgs"]="$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.2f", b - a }')"; fi
}

create_topic_kafka() { # GW BOOTSTRAP TOPIC: CreateTopics through the gateway (kafka-topics)
    local out="$work/$1-create-topic.txt"
    if ! run_limited "$out" 60 "$KAFKA_SH" topics --bootstrap-server "$2" --create --topic "$3" \
            --partitions "$PARTITIONS" --replication-factor 1; then
        fail_phase "$1" create-topic "kafka-topics --create failed" "$out"
        return 1
    fi
}

start_shim() { # LISTEN_PORT UPSTREAM_PORT LOG [REWRITE_PORT...]: sets shim_pid
    local listen="$1" upstream="$2" log="$3" a=()
    shift 3
    for p in "$@"; do a+=(--rewrite-port "$p"); done
    python3 "$here/kafka_shim.py" --listen "127.0.0.1:$listen" --upstream "127.0.0.1:$upstream" "${a[@]}" \
        >"$log" 2>&1 &
    shim_pid=$!
    wait_port "$listen" "$shim_pid" 10
}

start_kelp() { # PORT DATA_DIR LOG [EXTRA_FLAGS...]: sets kelp_pid; 0 once it accepts connections
    local port="$1" data="$2" log="$3"
    shift 3
    mkdir -p "$data"
    "$KELP_BIN" --listen "127.0.0.1:$port" --advertised-listener "127.0.0.1:$port" --data-dir "$data" "$@" \
        >"$log" 2>&1 &
    kelp_pid=$!
    wait_port "$port" "$kelp_pid" 30
}

# ---------------------------------------------------------------------------------------------------
# weed: one stack (master, volume, filer, MQ broker) for every SMQ-backed gateway

weed_version="$("$weed" version 2>/dev/null | head -n 1)"
kelp_version="$( [[ -x "$KELP_BIN" ]] && "$KELP_BIN" --version 2>/dev/null | head -n 1)"
say "weed: $weed ($weed_version)"
say "kelp: $KELP_BIN (${kelp_version:-?})"
if [[ $run_kelp == 1 || $with_embedded == 1 ]]; then
    if [[ "$KELP_BIN" == */debug/* ]]; then say "WARNING: $KELP_BIN is a debug build: its numbers mean little"; fi
    newer="$(find "$root/core" "$root"/runtime-* "$root/proto" -name '*.rs' -newer "$KELP_BIN" -print -quit 2>/dev/null)"
    if [[ -n "$newer" ]]; then say "WARNING: $KELP_BIN is older than the sources (e.g. ${newer#$root/}); rebuild it"; fi
fi
say "ports: master $master_port volume $volume_port filer $filer_port (gRPC +10000), broker $broker_port; go gateway $go_port via shim $shim_port; kelp $kelp_port; embedded $embedded_port; temp dir $work"

# glog: to stderr (our log files), and any file it still opens (weed shell does) into the temp dir, not /tmp.
mkdir -p "$work/weed-glog"
weed_log=(-logtostderr=true -logdir="$work/weed-glog")

wshell() { # COMMANDS: run weed shell commands against this stack; their output in $wshell_out
    printf '%s\n' "$1" >"$work/wshell.in"
    run_limited "$work/wshell.out" 30 sh -c 'exec "$@" <"$0"' "$work/wshell.in" \
        "$weed" "${weed_log[@]}" shell -master="127.0.0.1:$master_port"
    wshell_out="$(<"$work/wshell.out")"
}

kelp_has_backend=0
if [[ $run_kelp == 1 ]] && "$KELP_BIN" --help 2>&1 | grep -q -- '--backend'; then kelp_has_backend=1; fi
# A consumer group's first join answered at once, as the Kafka broker in bench/run.py is configured
# (group.initial.rebalance.delay.ms=0); the join is not part of the consume rate either way.
kelp_flags=()
if "$KELP_BIN" --help 2>&1 | grep -q -- '--group-initial-rebalance-delay-ms'; then
    kelp_flags=(--group-initial-rebalance-delay-ms 0)
fi
need_weed=0
[[ $run_go == 1 || $kelp_has_backend == 1 ]] && need_weed=1
weed_ok=0
if [[ $need_weed == 1 ]]; then
    mkdir -p "$work/weed"
    "$weed" "${weed_log[@]}" server -dir="$work/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.peers=none \
        -filer -mq.broker -master.port="$master_port" -volume.port="$volume_port" -filer.port="$filer_port" \
        -mq.broker.port="$broker_port" -filer.localSocket="$work/filer.sock" -master.telemetry=false \
        >"$work/weed.log" 2>&1 &
    weed_pid=$!
    say "weed: starting (pid $weed_pid); ready once mq.topic.list answers through the broker leader"
    start=$SECONDS
    while (( SECONDS - start < 150 )); do
        kill -0 "$weed_pid" 2>/dev/null || break
        wshell mq.topic.list
        if [[ "$wshell_out" == *"current balancer"* && "$wshell_out" != *rror* ]]; then weed_ok=1; break; fi
        sleep 1
    done
    if [[ $weed_ok == 1 ]]; then
        say "weed: ready in $(( SECONDS - start ))s"
    else
        say "weed: not ready after $(( SECONDS - start ))s"
        tail_log "$work/weed.log" 30 >&2
        echo "    last weed shell answer: ${wshell_out:-none}" >&2
    fi
fi

# ---------------------------------------------------------------------------------------------------
# Kelp with its SMQ backend (or embedded, if this kelp has no SMQ backend yet)

kelp_label="$(basename "$KELP_BIN")"   # kelp or kelp-smol
kelp_note=""
kelp_is_embedded=0
if [[ $run_kelp == 1 ]]; then
    backend="smq://127.0.0.1:$broker_port"
    kelp_up=0
    if [[ $kelp_has_backend == 0 ]]; then
        kelp_note="kelp: embedded backend (this kelp has no --backend)"
    elif [[ $weed_ok != 1 ]]; then
        kelp_note="kelp: embedded backend (weed did not start, so --backend $backend cannot be measured)"
    elif start_kelp "$kelp_port" "$work/kelp-smq" "$work/kelp-smq.log" "${kelp_flags[@]}" --backend "$backend"; then
        kelp_up=1
        kelp_label="$kelp_label (smq)"
        kelp_note="kelp: SMQ backend ($backend)"
    else
        why="$(sed -e 's/\x1b\[[0-9;]*m//g' "$work/kelp-smq.log" | grep -v '^\s*$' | tail -n 1 | cut -c1-200)"
        stop_pid "$kelp_pid" 5; kelp_pid=""
        kelp_note="kelp: embedded backend (this kelp refuses --backend $backend: ${why:-no output})"
    fi
    if [[ $kelp_up == 0 ]]; then
        kelp_is_embedded=1
        kelp_label="$kelp_label (embedded)"
        if start_kelp "$kelp_port" "$work/kelp-embedded" "$work/kelp-embedded.log" "${kelp_flags[@]}"; then kelp_up=1; fi
    fi
    echo "$kelp_note" >&2
    if [[ $kelp_up == 1 ]]; then
        kelp_bs="127.0.0.1:$kelp_port"
        if [[ $kelp_via_shim == 1 ]]; then
            start_shim "$kelp_shim_port" "$kelp_port" "$work/kelp-shim.log" "$kelp_port" || die "shim for kelp did not start"
            kelp_bs="127.0.0.1:$kelp_shim_port"
            kelp_label="$kelp_label via shim"
        fi
        if create_topic_kafka kelp "$kelp_bs" bench-kelp; then bench_gateway kelp "$kelp_bs" bench-kelp "$kelp_pid"; fi
        stop_pid "$shim_pid" 1; shim_pid=""
        stop_pid "$kelp_pid" 10; kelp_pid=""
    else
        detail["kelp:start"]="FAILED: kelp did not start"
        say "kelp did not start"
        tail_log "$work/kelp-embedded.log" >&2
    fi
fi

# ---------------------------------------------------------------------------------------------------
# SeaweedFS's Go gateway, behind kafka_shim.py

go_label="go (weed mq.kafka.gateway)"
if [[ $run_go == 1 ]]; then
    go_ok=0
    if [[ $weed_ok != 1 ]]; then
        detail["go:start"]="FAILED: weed did not start"
    else
        wshell "mq.topic.configure -namespace kafka -topic bench-go -partitionCount $PARTITIONS"
        if [[ "$wshell_out" != *"response:"* ]]; then
            detail["go:start"]="FAILED: mq.topic.configure kafka.bench-go"
            say "go: creating the topic through weed shell failed: $(tail -n 3 <<<"$wshell_out" | tr '\n' ' ')"
        else
            if [[ "$REGISTRY" == stub ]]; then
                python3 "$here/registry_stub.py" --listen "127.0.0.1:$registry_port" >"$work/registry.log" 2>&1 &
                reg_pid=$!
                wait_port "$registry_port" "$reg_pid" 10 || say "go: registry_stub.py did not start"
            fi
            "$weed" "${weed_log[@]}" mq.kafka.gateway -port="$go_port" -master="127.0.0.1:$master_port" \
                -ip=127.0.0.1 -ip.bind=127.0.0.1 -schema-registry-url="http://127.0.0.1:$registry_port" \
                >"$work/go-gateway.log" 2>&1 &
            gw_pid=$!
            if ! wait_port "$go_port" "$gw_pid" 30; then
                detail["go:start"]="FAILED: the gateway did not listen on $go_port"
            elif ! start_shim "$shim_port" "$go_port" "$work/go-shim.log" 9093 "$go_port"; then
                detail["go:start"]="FAILED: kafka_shim.py did not start"
                tail_log "$work/go-shim.log" >&2
            else
                go_ok=1
                say "go gateway: pid $gw_pid on $go_port, clients via the shim on $shim_port"
                bench_gateway go "127.0.0.1:$shim_port" bench-go "$gw_pid"
            fi
        fi
    fi
    if [[ $go_ok == 0 || -z "${res[go:consume:msgs]:-}" || -z "${res[go:acksall:msgs]:-}" ]]; then
        say "go gateway: not every phase went through; ${detail[go:start]:-}"
        [[ -f "$work/go-gateway.log" ]] && tail_log "$work/go-gateway.log" 30 >&2
    fi
    stop_pid "$shim_pid" 1; shim_pid=""
    stop_pid "$gw_pid" 5; gw_pid=""
    stop_pid "$reg_pid" 1; reg_pid=""
fi

# ---------------------------------------------------------------------------------------------------
# Optional third column: Kelp embedded

if [[ $with_embedded == 1 ]]; then
    if [[ $run_kelp == 1 && $kelp_is_embedded == 1 ]]; then
        say "embedded: the kelp column is already the embedded backend; not measured twice"
    elif start_kelp "$embedded_port" "$work/embedded" "$work/embedded.log" "${kelp_flags[@]}"; then
        if create_topic_kafka embedded "127.0.0.1:$embedded_port" bench-embedded; then
            bench_gateway embedded "127.0.0.1:$embedded_port" bench-embedded "$kelp_pid"
        fi
        stop_pid "$kelp_pid" 10; kelp_pid=""
    else
        detail["embedded:start"]="FAILED: kelp did not start"
        tail_log "$work/embedded.log" >&2
    fi
fi

# ---------------------------------------------------------------------------------------------------
# Report

gws=() labels=()
[[ $run_go == 1 ]] && { gws+=(go); labels+=("$go_label"); }
[[ $run_kelp == 1 ]] && { gws+=(kelp); labels+=("$kelp_label"); }
[[ $with_embedded == 1 && ! ( $run_kelp == 1 && $kelp_is_embedded == 1 ) ]] && { gws+=(embedded); labels+=("kelp (embedded)"); }
phases=(acksall)
[[ "$ACKS1" == 1 ]] && phases+=(acks1)
phases+=(consume)
if [[ -n "$RD_PYTHON" ]]; then
    phases+=(rdall)
    [[ "$ACKS1" == 1 ]] && phases+=(rdacks1)
    phases+=(rdconsume)
fi
declare -A title=([acksall]="produce acks=all" [acks1]="produce acks=1" [consume]="consume (fetch)"
                  [rdall]="rdkafka acks=all" [rdacks1]="rdkafka acks=1" [rdconsume]="rdkafka consume")

num() { # format a number or n/a
    if [[ -n "${1:-}" ]]; then printf '%.0f' "$1"; else printf 'n/a'; fi
}
num1() { if [[ -n "${1:-}" ]]; then printf '%.1f' "$1"; else printf 'n/a'; fi; }
ratio() { # A B: A/B as "12.3x" or n/a
    if [[ -n "${1:-}" && -n "${2:-}" ]] && awk -v b="$2" 'BEGIN { exit !(b > 0) }'; then
        awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'
    else printf 'n/a'; fi
}

echo
echo "== SMQ gateways: $RECORDS records x $SIZE B, $PARTITIONS partitions, one weed ($weed_version), $(nproc) cores"
echo "   Kafka 4.4.0 kafka-producer-perf-test (--throughput -1, producer defaults) / kafka-consumer-perf-test"
echo "   MB = 2^20 bytes, as the Kafka tools count; consume = fetch rate (group join excluded)"
[[ $run_kelp == 1 ]] && echo "   $kelp_note"
[[ $run_go == 1 ]] && echo "   go: SeaweedFS's gateway, clients through kafka_shim.py (ApiVersions v5->v4, advertised port); schema registry: $REGISTRY"
[[ $kelp_via_shim == 1 ]] && echo "   kelp: through kafka_shim.py too (--kelp-via-shim)"
echo
printf '%-32s' "gateway"
for ph in "${phases[@]}"; do printf '%24s' "${title[$ph]}"; done
echo
printf '%-32s' ""
for ph in "${phases[@]}"; do printf '%14s%10s' "msg/s" "MB/s"; done
echo
for i in "${!gws[@]}"; do
    g="${gws[$i]}"
    printf '%-32s' "${labels[$i]}"
    for ph in "${phases[@]}"; do
        printf '%14s%10s' "$(num "${res[$g:$ph:msgs]:-}")" "$(num1 "${res[$g:$ph:mb]:-}")"
    done
    echo
done
for g in kelp embedded; do
    [[ " ${gws[*]} " == *" $g "* && " ${gws[*]} " == *" go "* ]] || continue
    printf '%-32s' "ratio $g/go"
    for ph in "${phases[@]}"; do
        printf '%14s%10s' "$(ratio "${res[$g:$ph:msgs]:-}" "${res[go:$ph:msgs]:-}")" ""
    done
    echo
done
echo
echo "details:"
for i in "${!gws[@]}"; do
    g="${gws[$i]}"
    echo "  ${labels[$i]}:"
    [[ -n "${detail[$g:start]:-}" ]] && echo "    start: ${detail[$g:start]}"
    [[ -n "${detail[$g:create-topic]:-}" ]] && echo "    create topic: ${detail[$g:create-topic]}"
    for ph in "${phases[@]}"; do
        echo "    ${title[$ph]}: ${detail[$g:$ph]:-not run}"
    done
done
# For bench/run.py: one line per gateway and phase, tab-separated: gateway label phase msg/s MB/s;
# then its rss_idle, rss_peak (MiB) and cpu_s lines, the figure in the msg/s column
if [[ -n "${KELP_BENCH_RESULTS:-}" ]]; then
    for i in "${!gws[@]}"; do
        g="${gws[$i]}"
        for ph in "${phases[@]}"; do
            printf '%s\t%s\t%s\t%s\t%s\n' "$g" "${labels[$i]}" "$ph" "${res[$g:$ph:msgs]:-}" "${res[$g:$ph:mb]:-}"
        done
        # the gateway process's resources: MiB, MiB, CPU seconds
        for m in rss_idle rss_peak cpu_s; do
            printf '%s\t%s\t%s\t%s\t\n' "$g" "${labels[$i]}" "$m" "${res[$g:$m:msgs]:-}"
        done
    done >"$KELP_BENCH_RESULTS"
fi
echo "total time: $(( SECONDS - t0 ))s"
