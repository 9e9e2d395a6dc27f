#!/usr/bin/env python3
"""Side-by-side benchmark: each system started on 127.0.0.1 in turn, the same workloads, then stopped.

Run through bench/run.sh, which builds and installs what this needs. Systems (--systems picks some):
  kelp, kelp-smol   Kelp's two binaries, embedded log, default durability: fsync before every acks=all
                    answer (acks=1 answers without waiting for the disk)
  kelp-nofsync      kelp with --fsync-acks-all false: Kafka's durability (page cache, no fsync per
                    write), for a like-for-like comparison with Kafka
  kafka             Apache Kafka 4.4 KRaft single node (combined mode) from the Maven jars, on the
                    installed Java; its default durability: page cache, no fsync per write
  kafka-fsync       the same with log.flush.interval.messages=1: an fsync after every append, before
                    its answer. At acks=all that is the durability of Kelp's default, for a
                    like-for-like row beside `kelp` (at acks=1 it still fsyncs, and Kelp does not).
                    Not in the default set: it adds about 5 minutes (its acks=1 runs and
                    warm-up fsync too)
  tansu             Tansu (bench/tansu), memory storage, reached through bench/smq/kafka_shim.py
                    (it cannot parse the ApiVersions v5 of Kafka 4.4 clients)
  smq               Kelp on SMQ and SeaweedFS's Go gateway on one `weed` (bench/smq/gateways.sh,
                    --smq-records records): the throughput workloads and the gateway process's
                    resources, not the fixed rate (the Go gateway cannot keep up with it)
Workloads per system (topics of 3 partitions, values of --size bytes), after a warm-up of --warmup
records at acks=1 that is not measured, each after a sync of the machine's dirty pages:
  Kafka perf tools   produce --records at acks=all, again at acks=1, then consume --records (fetch
                     rate); produce at a fixed --rate for --seconds (after a 2 s warm-up at that
                     rate): produce-ack latency percentiles
  librdkafka         (bench/loadgen.py, confluent-kafka) produce --records at acks=all, again at
                     acks=1, consume --records;
                     at the fixed rate (same warm-up): produce-ack and end-to-end latency percentiles
  resources          the server process's RSS once idle (after start-up), its peak RSS (VmHWM, the warm-up included) and
                     CPU seconds (user + system) over all the workloads
A system that fails a phase gets the reason in its row; the harness goes on.
Output: a Markdown report with ratios against `kelp` in every row, the figures as JSON, and a PNG
chart, in bench/results/ (named by date and host).
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("KELP_CACHE", Path.home() / ".cache/kelp-tests"))
LIBS = CACHE / "kafka/libs"
LOG4J = ROOT / "tests/clients/kafka/log4j2-tools.yaml"
JAVA_TOOL = ["java", "-Xms256m", "-Xmx1g", f"-Dlog4j2.configurationFile={LOG4J}", "-cp", f"{LIBS}/*"]
PARTITIONS = 3
# seconds at the fixed rate before latencies count (connections, metadata, the client's JIT)
WARMUP_S = 2
# The fixed-rate runs measure the server, not the client's batching: Kafka 4 clients wait up to
# linger.ms=5 for a batch to fill, which alone sets every system's p99 near 5 ms at 10k records/s.
# (bench/loadgen.py's latency producer sets the same.)
LATENCY_PROPS = ("linger.ms=0",)


def say(*args):
    print(f"[bench {time.strftime('%H:%M:%S')}]", *args, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.2)
    return False


def tail(path, n=15):
    try:
        lines = Path(path).read_text(errors="replace").splitlines()[-n:]
    except OSError:
        return ""
    return "\n".join("    | " + re.sub(r"\x1b\[[0-9;]*m", "", l)[:220] for l in lines)


# ------------------------------------------------------------------------------------------------
# Process figures


def proc_status(pid):
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) / 1024  # MiB
    except OSError:
        pass
    return out


def stat_fields(pid):
    """The fields of /proc/PID/stat after the command name (field 3 onwards), or None."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def cpu_seconds(pid):
    fields = stat_fields(pid)
    return None if fields is None else (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_seconds():
    """CPU seconds the whole machine has spent since boot, over all cores: busy (every state of
    /proc/stat's first line but idle and iowait) and in iowait."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - ticks[3] - ticks[4]) / hz, ticks[4] / hz


def measured(pid, fn):
    """fn()'s result with where the CPU went while the server worked on it, under "cpu": the
    server's seconds (process `pid`, all threads), the whole machine's busy seconds and the wall
    seconds, from the first to the last fifth of a second in which the server used more than a
    tenth of a core (so a client's start-up, a JVM's, before it connects is left out, as the
    rate it reports leaves it out; the kernel counts CPU time in hundredths of a second). Read the
    figures as rates (cores used) over that window: a slow start of the client may fall outside
    it. Why: on a small machine the client's own CPU bounds how fast any server can be measured
    (see cpu_report)."""
    samples, stop = [], threading.Event()

    def sample():
        while True:
            server = cpu_seconds(pid)
            if server is not None:
                samples.append((time.monotonic(), *machine_seconds(), server))
            if stop.wait(0.2):
                break

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = fn()
    finally:
        stop.set()
        sampler.join()
    active = [i for i in range(1, len(samples))
              if samples[i][3] - samples[i - 1][3] > 0.1 * (samples[i][0] - samples[i - 1][0])]
    if active:
        first, last = samples[active[0] - 1], samples[active[-1]]
        (wall, busy, iowait, server) = (round(b - a, 2) for a, b in zip(first, last))
        result["cpu"] = {"server_s": server, "busy_s": busy, "iowait_s": iowait, "wall_s": wall}
    return result


def minor_faults(pid):
    fields = stat_fields(pid)
    return None if fields is None else int(fields[7])


# ------------------------------------------------------------------------------------------------
# Systems: each returns (the server's Popen, the port clients use, helper Popens to stop with it) or
# raises with the reason


def start_kelp(binary, work, _args, extra=()):
    port = free_port()
    data = work / "data"
    data.mkdir(parents=True)
    log = open(work / "server.log", "w")
    proc = subprocess.Popen(
        [str(binary), "--listen", f"127.0.0.1:{port}", "--advertised-listener", f"127.0.0.1:{port}",
         "--data-dir", str(data), "--default-partitions", str(PARTITIONS),
         # a group's first join answered at once, as Kafka below (group.initial.rebalance.delay.ms=0)
         "--group-initial-rebalance-delay-ms", "0", *extra],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "KELP_LOG": "warn", "NO_COLOR": "1"})
    return proc, port, []


def start_kafka(_binary, work, _args, extra=""):
    port, controller = free_port(), free_port()
    props = work / "server.properties"
    props.write_text(f"""process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={work / 'data'}
num.partitions={PARTITIONS}
default.replication.factor=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
{extra}""")
    # the heap of bin/kafka-server-start.sh
    jvm = ["java", "-Xms1g", "-Xmx1g", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
           f"-Dlog4j2.configurationFile={ROOT / 'tests/golden/broker/log4j2.yaml'}", "-cp", f"{LIBS}/*"]
    fmt = subprocess.run(jvm + ["kafka.tools.StorageTool", "format", "-t", "kelp-bench-cluster-0001",
                                "-c", str(props), "--standalone"],
                         capture_output=True, text=True, timeout=120)
    if fmt.returncode != 0:
        fmt = subprocess.run(jvm + ["kafka.tools.StorageTool", "format", "-t", "kelp-bench-cluster-0001",
                                    "-c", str(props)], capture_output=True, text=True, timeout=120)
    if fmt.returncode != 0:
        raise RuntimeError("storage format failed: " + (fmt.stdout + fmt.stderr).strip()[-300:])
    log = open(work / "server.log", "w")
    proc = subprocess.Popen(jvm + ["kafka.Kafka", str(props)], stdout=log, stderr=subprocess.STDOUT)
    return proc, port, []


def start_tansu(_binary, work, _args):
    """Tansu 0.6 decodes the ApiVersions v5 of Kafka 4.4 clients as v4 and drops the connection, so
    clients reach it through bench/smq/kafka_shim.py (v5 sent as v4), which it advertises."""
    port, shim_port = free_port(), free_port()
    log = open(work / "server.log", "w")
    proc = subprocess.Popen(["bash", str(ROOT / "bench/tansu/start.sh"), str(port), str(work / "data")],
                            stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "TANSU_ADVERTISED_PORT": str(shim_port)})
    shim = subprocess.Popen([sys.executable, str(ROOT / "bench/smq/kafka_shim.py"), "--listen",
                             f"127.0.0.1:{shim_port}", "--upstream", f"127.0.0.1:{port}"],
                            stdout=open(work / "shim.log", "w"), stderr=subprocess.STDOUT)
    if not wait_port(port, proc, 60):
        shim.kill()
        raise RuntimeError("did not listen within 60 s\n" + tail(work / "server.log"))
    return proc, shim_port, [shim]


# ------------------------------------------------------------------------------------------------
# Workloads


def run(cmd, out_path, seconds):
    """The command's output (also kept in out_path); raises on a timeout or a failure exit."""
    with open(out_path, "w") as out:
        try:
            p = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=seconds,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"timed out after {seconds}s")
    text = Path(out_path).read_text(errors="replace")
    if p.returncode != 0:
        err = next((l for l in text.splitlines() if "Exception" in l or "rror" in l), "")
        raise RuntimeError(f"exit {p.returncode}: {err[:200]}")
    return text


def create_topic(bootstrap, topic, work):
    run(JAVA_TOOL + ["org.apache.kafka.tools.TopicCommand", "--bootstrap-server", bootstrap, "--create",
                     "--topic", topic, "--partitions", str(PARTITIONS), "--replication-factor", "1"],
        work / f"create-{topic}.txt", 120)


PERF_LINE = re.compile(
    r"^(\d+) (?:steady state )?records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
    r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th", re.M)


def perf_produce(bootstrap, topic, records, size, acks, work, throughput=-1, warmup=0, timeout=900, props=()):
    """The tool's summary; with `warmup`, of the records after the first `warmup` (steady state)."""
    text = run(JAVA_TOOL + ["org.apache.kafka.tools.ProducerPerformance", "--bootstrap-server", bootstrap,
                            "--topic", topic, "--num-records", str(records + warmup), "--record-size",
                            str(size), "--throughput", str(throughput), "--command-property", f"acks={acks}",
                            *props]
               + (["--warmup-records", str(warmup)] if warmup else []),
               work / f"perf-produce-{topic}-{acks}.txt", timeout)
    m = [m for m in PERF_LINE.finditer(text) if int(m.group(1)) == records]
    if not m:
        raise RuntimeError("no summary line (" + text.strip().splitlines()[-1][:160] + ")" if text.strip()
                           else "no output")
    g = m[-1].groups()
    return {"rate": float(g[1]), "mb_s": float(g[2]), "p50_ms": float(g[5]), "p99_ms": float(g[7]),
            "p999_ms": float(g[8])}


def perf_consume(bootstrap, topic, records, work, timeout=900):
    text = run(JAVA_TOOL + ["org.apache.kafka.tools.ConsumerPerformance", "--bootstrap-server", bootstrap,
                            "--topic", topic, "--num-records", str(records), "--timeout", "60000",
                            "--group", f"bench-{time.time_ns()}"],
               work / f"perf-consume-{topic}.txt", timeout)
    rows = [l.replace(" ", "").split(",") for l in text.splitlines()
            if re.match(r"^\d{4}-\d\d-\d\d .*, .*, ", l)]
    if not rows or len(rows[-1]) < 10:
        raise RuntimeError("no summary line")
    f = rows[-1]
    if float(f[4]) < records:
        raise RuntimeError(f"read {f[4]} of {records} records")
    return {"rate": float(f[9]), "mb_s": float(f[8]), "join_ms": float(f[6])}


# Consume rates of identical runs against one server swing by a fifth either way (both consumers are
# the limit, not the servers): 1M records read 6 times with librdkafka, kelp 632k-905k records/s,
# Kafka 574k-814k. One run per system let that noise decide the ratio, so a consume phase reads up to
# CONSUME_RUNS times while its first CONSUME_BUDGET_S last and reports the median run.
# 5 rather than 3 since 2026-12-05: reads of 1M cached records take about 1 s, and at 3 runs one
# noisy second decided the ratio (librdkafka, fresh servers, same minute: kelp 894k-1,137k, Kafka
# 1,024k-1,148k; the 09:25 full run's 0.86x was 1,044k against 1,207k). Each read costs 1-2 s
# (librdkafka) or about 4 s (ConsumerPerformance's JVM), well inside the budget.
CONSUME_RUNS = 5
CONSUME_BUDGET_S = 30
# A librdkafka read stops after this many seconds of reading and reports the rate of what it read:
# a slow server's 1M records took 48 s (Tansu) to 62 s (the Go gateway, of 200k), which only made the
# run longer. A fast one finishes first (Kelp and Kafka read 1M in 1-2 s).
RD_CONSUME_CAP_S = 20


def median_run(fn):
    """The run with the median rate (of an even number, the slower middle one), with every run's rate under "runs"."""
    runs = []
    t0 = time.monotonic()
    # a read that hit its time cap is the only one: the server is too slow to read again in the budget
    while len(runs) < CONSUME_RUNS and (not runs or (time.monotonic() - t0 < CONSUME_BUDGET_S
                                                     and not runs[-1].get("capped"))):
        runs.append(fn())
    pick = sorted(runs, key=lambda r: r["rate"])[(len(runs) - 1) // 2]
    return {**pick, "runs": [r["rate"] for r in runs]}


def settle():
    """Writes the machine's dirty pages out (sync) and returns the seconds that took. Run before
    each measured workload: a workload that writes a gigabyte leaves much of it to the kernel's
    writeback (Kafka's, all of it), and whichever workload runs next, on any system, would share
    the device with it. It does not cure everything: with --repeat 3, librdkafka at acks=all
    measured 212k-242k records/s for kelp and 223k-243k for Kafka even with these syncs, against
    500k-530k for kelp in single runs; what slows a server that has taken several GB is not
    dirty memory. Most likely it is memory the host took back: see memory_probe and the README."""
    t0 = time.monotonic()
    os.sync()
    return time.monotonic() - t0


def repeated(fn, times):
    """`fn` run `times` times in a row: the run with the median rate (of an even number, the slower
    middle one), with every run's rate under "runs". Why: on a shared VM one run of a produce phase
    swings by a fifth between runs of one server (122k-144k records/s for kelp at acks=all within
    minutes), so a ratio of single runs says more about the moment than the system."""
    runs = []
    for i in range(max(times, 1)):
        if i:
            settle()
        runs.append(fn())
    pick = sorted(runs, key=lambda r: r["rate"])[(len(runs) - 1) // 2]
    return {**pick, "runs": [r["rate"] for r in runs]} if len(runs) > 1 else pick


def loadgen(python, args, out_path, timeout):
    text = run([python, str(ROOT / "bench/loadgen.py")] + [str(a) for a in args], out_path, timeout)
    return json.loads(text.strip().splitlines()[-1])


def rd_consume(python, bootstrap, topic, records, work):
    out = loadgen(python, ["consume", bootstrap, topic, records, RD_CONSUME_CAP_S], work / "rd-consume.txt", 900)
    if out["records"] < records and not out.get("capped"):
        raise RuntimeError(f"read {out['records']} of {records} records")
    return out


def bench_system(name, start, binary, args, python, base):
    work = base / name
    work.mkdir(parents=True)
    row = {"system": name, "errors": {}}
    try:
        proc, port, helpers = start(binary, work, args)
    except Exception as e:  # noqa: BLE001 - a system that cannot start is reported, not fatal
        row["errors"]["start"] = str(e)
        return row
    bootstrap = f"127.0.0.1:{port}"
    try:
        if not wait_port(port, proc, 120):
            row["errors"]["start"] = "did not listen within 120 s\n" + tail(work / "server.log")
            return row
        time.sleep(3)
        row["idle_rss_mb"] = proc_status(proc.pid).get("VmRSS")
        if args.warmup:
            # Not measured. Why: a JVM compiles its hot paths during the first seconds of load, and
            # Kafka's three back-to-back runs of produce at acks=all measured 94.8k, 127.7k and
            # 152.3k records/s; a single cold run compares Kelp with Kafka's interpreter.
            say(f"{name}: warm-up, {args.warmup:,} records at acks=1 (not measured)")
            try:
                create_topic(bootstrap, "warmup", work)
                row["warmup"] = perf_produce(bootstrap, "warmup", args.warmup, args.size, "1", work)
            except Exception as e:  # noqa: BLE001
                row["errors"]["warmup"] = str(e)
        cpu0 = cpu_seconds(proc.pid)

        def perf(acks):
            return measured(proc.pid, lambda: perf_produce(bootstrap, "perf", args.records, args.size, acks, work))

        def rd(acks, out):
            return measured(proc.pid, lambda: loadgen(
                python, ["produce", bootstrap, "rd", args.records, args.size, acks], work / out, 900))

        phases = [
            ("produce_all", lambda: (create_topic(bootstrap, "perf", work),
                                     repeated(lambda: perf("all"), args.repeat))[1]),
            ("produce_1", lambda: repeated(lambda: perf("1"), args.repeat)),
            ("consume", lambda: median_run(lambda: perf_consume(bootstrap, "perf", args.records, work))),
            ("rd_produce", lambda: (create_topic(bootstrap, "rd", work),
                                    repeated(lambda: rd("all", "rd-produce.txt"), args.repeat))[1]),
            ("rd_produce_1", lambda: repeated(lambda: rd("1", "rd-produce-1.txt"), args.repeat)),
            ("rd_consume", lambda: median_run(lambda: rd_consume(python, bootstrap, "rd", args.records, work))),
            ("perf_latency", lambda: (create_topic(bootstrap, "lat", work),
                                      perf_produce(bootstrap, "lat", int(args.rate * args.seconds), args.size,
                                                   "all", work, throughput=args.rate,
                                                   warmup=args.rate * WARMUP_S, props=LATENCY_PROPS))[1]),
            ("rd_latency", lambda: (create_topic(bootstrap, "rdlat", work),
                                    loadgen(python, ["latency", bootstrap, "rdlat", args.rate, args.seconds,
                                                     args.size], work / "rd-latency.txt",
                                            WARMUP_S + args.seconds + 240))[1]),
        ]
        for phase, fn in phases:
            if proc.poll() is not None:
                row["errors"][phase] = "the server died\n" + tail(work / "server.log")
                continue
            row.setdefault("sync_s", {})[phase] = round(settle(), 2)
            say(f"{name}: {phase}")
            try:
                row[phase] = fn()
                say(f"{name}: {phase}: {json.dumps(row[phase])}")
                # VmHWM only grows: what it reached after each phase tells which phase set the peak
                row.setdefault("peak_rss_after_mb", {})[phase] = proc_status(proc.pid).get("VmHWM")
            except Exception as e:  # noqa: BLE001
                row["errors"][phase] = str(e)
                say(f"{name}: {phase}: FAILED: {e}")
        st = proc_status(proc.pid)
        row["peak_rss_mb"] = st.get("VmHWM")
        cpu1 = cpu_seconds(proc.pid)
        if cpu0 is not None and cpu1 is not None:
            row["cpu_s"] = cpu1 - cpu0
    finally:
        for p in [proc] + helpers:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(work / "data", ignore_errors=True)
    return row


def bench_smq(args, base):
    """Kelp on SMQ and the Go gateway: rows from bench/smq/gateways.sh."""
    results = base / "smq.tsv"
    env = {**os.environ, "KELP_BENCH_RECORDS": str(args.smq_records), "KELP_BENCH_RESULTS": str(results),
           "KELP_BENCH_BUDGET": str(args.smq_budget), "KELP_BIN": str(args.bin_dir / "kelp"),
           "KELP_BENCH_PYTHON": args.python, "KELP_BENCH_RD_CONSUME_CAP_S": str(RD_CONSUME_CAP_S)}
    say(f"smq: bench/smq/gateways.sh with {args.smq_records} records")
    with open(base / "smq.log", "w") as log:
        subprocess.run(["bash", str(ROOT / "bench/smq/gateways.sh")], env=env, stdout=log,
                       stderr=subprocess.STDOUT, timeout=args.smq_budget + 300)
    rows = {}
    if not results.exists():
        return [{"system": "kelp (smq)", "errors": {"start": "gateways.sh wrote no results\n" +
                                                      tail(base / "smq.log", 30)}}]
    names = {"kelp": "kelp on SMQ", "go": "Go gateway on SMQ"}
    key = {"acksall": "produce_all", "acks1": "produce_1", "consume": "consume", "rdall": "rd_produce",
           "rdacks1": "rd_produce_1", "rdconsume": "rd_consume"}
    resources = {"rss_idle": "idle_rss_mb", "rss_peak": "peak_rss_mb", "cpu_s": "cpu_s"}
    for line in results.read_text().splitlines():
        gw, label, phase, msgs, mb = (line.split("\t") + [""] * 5)[:5]
        row = rows.setdefault(gw, {"system": names.get(gw, gw), "label": label, "errors": {}})
        if phase in resources:
            if msgs:
                row[resources[phase]] = float(msgs)
        elif msgs:
            row[key[phase]] = {"rate": float(msgs), "mb_s": float(mb or 0)}
        else:
            row["errors"][key[phase]] = "failed (see smq.log)"
    return list(rows.values())


# ------------------------------------------------------------------------------------------------
# Report


def fmt_num(v, digits=0):
    return "n/a" if v is None else f"{v:,.{digits}f}"


def ratio(v, ref):
    return "" if v is None or not ref else f" ({v / ref:.2f}x)"


# The throughput workloads, in the report's column order.
THROUGHPUT_PHASES = ("produce_all", "produce_1", "consume", "rd_produce", "rd_produce_1", "rd_consume")


def report(rows, args, started, machine):
    ref = next((r for r in rows if r["system"] == "kelp"), {})
    smq_ref = next((r for r in rows if r["system"] == "kelp on SMQ"), {})
    out = [f"# Kelp benchmark, {started:%Y-%m-%d %H:%M} UTC", "", machine, "",
           f"Records of {args.size} B, topics of {PARTITIONS} partitions, everything on 127.0.0.1 on this "
           f"machine, one system at a time. Throughput runs: {args.records:,} records per run "
           + (f"(each produce workload run {args.repeat} times in a row, the median reported) "
              if args.repeat > 1 else "")
           + (f"after a warm-up of {args.warmup:,} records at acks=1 that is not measured (a JVM compiles "
              "its hot paths in the first seconds of load) " if args.warmup else "")
           + "and each workload after the machine's dirty pages are written out (sync), so none "
           "shares the device with the writeback of the one before " +
           f"(SMQ rows: {args.smq_records:,}). Fixed rate: {args.rate:,} records/s for {args.seconds} s, "
           "acks=all, linger.ms=0 (the server's latency, not the client's batching delay). Consume: the median "
           f"of up to {CONSUME_RUNS} reads of the same records (as many as start within {CONSUME_BUDGET_S} s; "
           f"SMQ rows: one); a librdkafka read stops after {RD_CONSUME_CAP_S} s of reading and counts what it "
           "read by then. MB = 2^20 B. "
           "In parentheses: the ratio to `kelp` (higher is better for "
           "throughput, lower for latency and resources); the Go gateway's is to Kelp on SMQ.",
           "", "Durability: kelp and kelp-smol fsync before answering acks=all; kelp-nofsync is kelp "
           "with --fsync-acks-all false, which like Apache Kafka leaves writes in the page cache (Kafka's "
           "default); kafka-fsync is Kafka with log.flush.interval.messages=1, an fsync after every "
           "append before its answer (at acks=all Kelp's default durability, at acks=1 more); Tansu "
           "keeps records in memory; on SMQ the broker "
           "acknowledges from memory and flushes every few seconds (docs/smq.md).", ""]

    def get(r, phase, field):
        return (r.get(phase) or {}).get(field)

    def base(r):
        return smq_ref if r["system"] == "Go gateway on SMQ" else ref

    out += ["## Throughput (records/s, MB/s)", "",
            "| system | produce acks=all (perf) | produce acks=1 (perf) | consume (perf, fetch rate) | "
            "produce acks=all (librdkafka) | produce acks=1 (librdkafka) | consume (librdkafka) |",
            "|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = []
        for phase in THROUGHPUT_PHASES:
            v, mb = get(r, phase, "rate"), get(r, phase, "mb_s")
            if v is None:
                cells.append("failed" if phase in r["errors"] else "not run")
            else:
                cells.append(f"{fmt_num(v)} / {fmt_num(mb, 1)} MB/s{ratio(v, get(base(r), phase, 'rate'))}")
        out.append(f"| {r['system']} | " + " | ".join(cells) + " |")

    out += ["", f"## Latency at {args.rate:,} records/s (ms: p50 / p99 / p99.9)", "",
            "| system | produce-ack (perf) | produce-ack (librdkafka) | end-to-end (librdkafka) |",
            "|---|---|---|---|"]
    for r in rows:
        if r["system"].endswith("on SMQ"):
            continue
        cells = []
        for phase, sub in (("perf_latency", None), ("rd_latency", "ack"), ("rd_latency", "e2e")):
            d = r.get(phase) or {}
            d = (d.get(sub) or {}) if sub else d
            ref_d = (ref.get(phase) or {})
            ref_d = (ref_d.get(sub) or {}) if sub else ref_d
            if not d:
                cells.append("failed" if phase in r["errors"] else "not run")
            else:
                cells.append(f"{d['p50_ms']:.1f} / {d['p99_ms']:.1f} / {d['p999_ms']:.1f}"
                             f"{ratio(d['p99_ms'], ref_d.get('p99_ms'))}")
        out.append(f"| {r['system']} | " + " | ".join(cells) + " |")
    out += ["", "(ratio: of the p99; the SMQ rows are not run at the fixed rate)", "",
            "## Resources of the server process", "",
            "| system | idle RSS (MiB) | peak RSS (MiB) | CPU seconds over all workloads |", "|---|---|---|---|"]
    for r in rows:
        b = smq_ref if r["system"].endswith("on SMQ") else ref
        out.append(f"| {r['system']} | {fmt_num(r.get('idle_rss_mb'), 1)}{ratio(r.get('idle_rss_mb'), b.get('idle_rss_mb'))}"
                   f" | {fmt_num(r.get('peak_rss_mb'), 1)}{ratio(r.get('peak_rss_mb'), b.get('peak_rss_mb'))}"
                   f" | {fmt_num(r.get('cpu_s'), 1)}{ratio(r.get('cpu_s'), b.get('cpu_s'))} |")
    out += ["", "(SMQ rows: the gateway process alone, over the SMQ workloads (--smq-records records), "
            "with ratios to Kelp on SMQ; the `weed` server they share is not counted)"]
    out += targets_report(rows)
    out += cpu_report(rows)
    errors = [(r["system"], k, v) for r in rows for k, v in r["errors"].items()]
    if errors:
        out += ["", "## Failures", ""]
        for system, phase, why in errors:
            out.append(f"- {system}, {phase}: " + why.replace("\n", "\n  "))
    return "\n".join(out) + "\n"


# The targets: (what, phase, field within the phase, the ratio Kelp must reach, higher is
# better). Ratios are Kelp's figure over the peer's.
TARGETS = [("acks=all produce, perf", "produce_all", None, 1.5, True),
           ("acks=all produce, librdkafka", "rd_produce", None, 1.5, True),
           ("consume, perf", "consume", None, 1.0, True),
           ("consume, librdkafka", "rd_consume", None, 1.0, True),
           ("p99 produce-ack at the fixed rate, perf", "perf_latency", None, 0.5, False),
           ("p99 produce-ack at the fixed rate, librdkafka", "rd_latency", "ack", 0.5, False),
           ("peak RSS", None, None, 0.1, False)]

# (Kelp's row, the peer's row, what the two have in common)
PAIRS = [("kelp", "kafka", "each its default: Kelp fsyncs before an acks=all answer, Kafka does not"),
         ("kelp-nofsync", "kafka", "page cache, no fsync per write (Kafka's default)"),
         ("kelp", "kafka-fsync", "an fsync before every acks=all answer (Kelp's default)")]


def targets_report(rows):
    """The targets as ratios, for each pairing of a Kelp row with a Kafka row that this run has:
    the two defaults, and the two like-for-like durabilities. Why: Kelp's default is stronger than
    Kafka's, so the default pairing mixes what durability costs with what the server costs."""
    by = {r["system"]: r for r in rows}

    def figure(r, phase, sub):
        if phase is None:
            return r.get("peak_rss_mb")
        d = r.get(phase) or {}
        if phase.endswith("latency"):
            d = (d.get(sub) or {}) if sub else d
            return d.get("p99_ms")
        return d.get("rate")

    pairs = [(k, p, why) for k, p, why in PAIRS if k in by and p in by]
    if not pairs:
        return []
    out = ["", "## The targets, pairing by durability", "",
           "Kelp's figure over the peer's; a target holds at the ratio shown or better (perf latencies "
           "are whole milliseconds, as ProducerPerformance prints them).", ""]
    for k, p, why in pairs:
        out.append(f"- `{k}` against `{p}`: {why}")
    out += ["", "| target | " + " | ".join(f"{k} / {p}" for k, p, _ in pairs) + " |",
            "|---|" + "---|" * len(pairs)]
    for name, phase, sub, goal, higher in TARGETS:
        cells = []
        for k, p, _ in pairs:
            a, b = figure(by[k], phase, sub), figure(by[p], phase, sub)
            if a is None or not b:
                cells.append("n/a")
                continue
            r = a / b
            holds = r >= goal if higher else r <= goal
            cells.append(f"{r:.2f}x, " + ("holds" if holds else "short"))
        out.append(f"| {name} ({'≥' if higher else '≤'} {goal}x) | " + " | ".join(cells) + " |")
    smq, go = by.get("kelp on SMQ"), by.get("Go gateway on SMQ")
    if smq and go:
        ratios = [smq[ph]["rate"] / go[ph]["rate"] for ph in THROUGHPUT_PHASES
                  if (smq.get(ph) or {}).get("rate") and (go.get(ph) or {}).get("rate")]
        if ratios:
            out += ["", f"Kelp on SMQ over the Go gateway (≥ 3x): {min(ratios):.2f}x to {max(ratios):.2f}x "
                    f"over the {len(ratios)} throughput workloads, "
                    + ("holds" if min(ratios) >= 3 else "short") + "."]
    return out


def cpu_report(rows):
    """Where the machine's CPU went in the acks=all produce runs (the median run's figures): the
    server's microseconds a record, the rest of the machine's (the client, and kernel threads such
    as writeback), how busy all cores were, and the ceiling: the rate at which the rest alone would
    keep every core busy, had the server cost nothing. Why: on 2 cores ProducerPerformance and the
    rest of the machine take about 10 µs of CPU a record whatever the server, so the client bounds
    what any server can be measured at; the ceiling over Kafka's rate bounds the ratio a run can
    show, and how busy the cores were tells a server that waits from one that computes."""
    cores = os.cpu_count() or 1
    kafka = next((r for r in rows if r["system"] == "kafka"), {})
    lines = []
    for r in rows:
        cells = []
        for phase in ("produce_all", "rd_produce"):
            d = r.get(phase) or {}
            cpu = d.get("cpu")
            if not cpu or not cpu.get("wall_s") or not d.get("rate"):
                cells.append("n/a | n/a")
                continue
            # cores used over the window, per record of the run's rate
            server = cpu["server_s"] / cpu["wall_s"] / d["rate"] * 1e6
            rest = max(cpu["busy_s"] - cpu["server_s"], 0) / cpu["wall_s"] / d["rate"] * 1e6
            busy = cpu["busy_s"] / (cpu["wall_s"] * cores)
            ceiling = cores * 1e6 / rest if rest else None
            vs_kafka = ((kafka.get(phase) or {}).get("rate") or 0)
            cells.append(f"{server:.1f} / {rest:.1f} µs, {busy:.0%} busy"
                         f" | {fmt_num(ceiling)}" + (f" ({ceiling / vs_kafka:.2f}x kafka)" if ceiling and vs_kafka else ""))
        if any(c != "n/a | n/a" for c in cells):
            lines.append(f"| {r['system']} | " + " | ".join(cells) + " |")
    if not lines:
        return []
    return ["", "## CPU per record at acks=all (server / rest of the machine)", "",
            f"The rest is the client with anything else the machine ran (kernel writeback threads); busy is "
            f"of all {cores} cores. Counted while the server worked (more than a tenth of a core), as cores "
            "used over the run's rate. Ceiling: records/s at which the rest alone would keep every "
            "core busy had the server cost nothing. While the client's cost a record stays as measured, no "
            "server can be measured faster with this client on this machine, so the ceiling over Kafka's "
            "rate bounds the ratio to Kafka a run can show.", "",
            "| system | perf: CPU a record | perf: ceiling | librdkafka: CPU a record | librdkafka: ceiling |",
            "|---|---|---|---|---|"] + lines


def chart(rows, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no chart: matplotlib is not installed"
    fig, axes = plt.subplots(1, 3, figsize=(16, 5))
    phases = [("produce_all", "produce acks=all"), ("produce_1", "produce acks=1"), ("consume", "consume"),
              ("rd_produce", "librdkafka acks=all"), ("rd_produce_1", "librdkafka acks=1"),
              ("rd_consume", "librdkafka consume")]
    width = 0.8 / max(1, len(rows))
    for i, r in enumerate(rows):
        xs = [k + i * width for k in range(len(phases))]
        axes[0].bar(xs, [((r.get(p) or {}).get("rate") or 0) / 1000 for p, _ in phases], width, label=r["system"])
    axes[0].set_xticks([k + width * (len(rows) - 1) / 2 for k in range(len(phases))])
    axes[0].set_xticklabels([t for _, t in phases], rotation=20, ha="right")
    axes[0].set_ylabel("thousand records/s")
    axes[0].set_title("Throughput")
    axes[0].legend(fontsize=8)
    lat = [r for r in rows if not r["system"].endswith("on SMQ")]
    kinds = [("perf_latency", None, "ack (perf)"), ("rd_latency", "ack", "ack (librdkafka)"),
             ("rd_latency", "e2e", "end-to-end")]
    width = 0.8 / max(1, len(lat))
    for i, r in enumerate(lat):
        vals = []
        for phase, sub, _ in kinds:
            d = r.get(phase) or {}
            d = (d.get(sub) or {}) if sub else d
            vals.append(d.get("p99_ms") or 0)
        axes[1].bar([k + i * width for k in range(len(kinds))], vals, width, label=r["system"])
    axes[1].set_xticks([k + width * (len(lat) - 1) / 2 for k in range(len(kinds))])
    axes[1].set_xticklabels([t for _, _, t in kinds], rotation=20, ha="right")
    axes[1].set_ylabel("p99 ms (log scale)")
    axes[1].set_yscale("log")
    axes[1].set_title("Latency p99 at the fixed rate")
    names = [r["system"] for r in lat]
    axes[2].bar([k - 0.2 for k in range(len(lat))], [r.get("idle_rss_mb") or 0 for r in lat], 0.4, label="idle")
    axes[2].bar([k + 0.2 for k in range(len(lat))], [r.get("peak_rss_mb") or 0 for r in lat], 0.4, label="peak")
    axes[2].set_xticks(range(len(lat)))
    axes[2].set_xticklabels(names, rotation=20, ha="right")
    axes[2].set_ylabel("RSS MiB")
    axes[2].set_title("Memory")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return None


def machine_description(base):
    cpu = ""
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                   if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = proc_mem = ""
    try:
        mem = next(l.split(":", 1)[1].strip() for l in Path("/proc/meminfo").read_text().splitlines()
                   if l.startswith("MemTotal"))
    except (OSError, StopIteration):
        pass
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    return (f"Machine: {platform.node()}, {os.cpu_count()} cores ({cpu}), {mem} RAM, "
            f"{platform.system()} {platform.release()}; {java[0] if java else 'no java'}.{proc_mem}"
            f"{memory_probe(base)}")


def memory_probe(base, mib=256):
    """How fast the page cache takes a new file's writes now, and again into memory freed a moment before.

    Why: on a virtual machine whose host takes freed guest memory back (virtio-balloon free page
    reporting, as on Firecracker), the first write to each page costs a fault on the host. On the
    machine this harness was written on that ran at 0.4 GB/s against 5.3 GB/s into memory reused at
    once, and memory freed for more than a few seconds was slow again. Every system under test
    writes its log through the page cache (Kelp's segments, Kafka's logs), so each pays it per byte
    alike; how much it costs varies with the host's state, and with it a run's figures."""
    chunk = b"\1" * (1 << 20)
    rates = []
    for _ in range(2):
        path = base / "memory-probe"
        t0 = time.perf_counter()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for _ in range(mib):
                os.write(fd, chunk)
        finally:
            os.close(fd)
        rates.append(mib / 1024 / (time.perf_counter() - t0))
        path.unlink()
    reporting = Path("/sys/module/page_reporting/parameters/reported_kib")
    hint = " (the host takes freed memory back: free page reporting)" if reporting.exists() else ""
    return (f" Page-cache writes of {mib} MiB at the start: {rates[0]:.1f} GiB/s into a new file, {rates[1]:.1f} "
            f"GiB/s into another at once after deleting it{hint}.")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--systems", default="kelp,kelp-smol,kelp-nofsync,kafka,tansu,smq")
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--rate", type=int, default=10_000)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2_000_000,
                    help="records each system (not SMQ) takes at acks=1 before the measured workloads "
                         "(0: none)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs of each produce workload per system (not SMQ), the median reported: "
                         "3 makes ratios steadier on a noisy machine and adds about 4 minutes")
    ap.add_argument("--smq-records", type=int, default=200_000)
    ap.add_argument("--smq-budget", type=int, default=600)
    ap.add_argument("--bin-dir", type=Path, default=ROOT / "target/release")
    ap.add_argument("--python", default=sys.executable, help="a Python with confluent-kafka")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (logs, tool outputs)")
    ap.add_argument("--report", type=Path, metavar="JSON",
                    help="measure nothing: write the report (.md, .png) of a run's .json again, with this "
                         "version's tables")
    args = ap.parse_args()
    if args.report:
        saved = json.loads(args.report.read_text())
        # (a run older than an option ran as without it: no warm-up, one run of each workload)
        kept = {**vars(ap.parse_args([])), "warmup": 0, "repeat": 1}
        kept.update({k: int(v) if v.isdigit() else v for k, v in saved["args"].items()})
        kept = argparse.Namespace(**kept)
        started = datetime.datetime.fromisoformat(saved["started"])
        print(write_report(saved["rows"], kept, started, saved["machine"], args.report.with_suffix("")))
        return
    started = datetime.datetime.now(datetime.timezone.utc)
    base = Path(tempfile.mkdtemp(prefix="kelp-bench-"))
    machine = machine_description(base)
    say(machine)
    starters = {"kelp": (start_kelp, args.bin_dir / "kelp"), "kelp-smol": (start_kelp, args.bin_dir / "kelp-smol"),
                "kelp-nofsync": (lambda b, w, a: start_kelp(b, w, a, ["--fsync-acks-all", "false"]),
                                 args.bin_dir / "kelp"),
                "kafka": (start_kafka, None),
                # an fsync after every append, as Kelp's default does before an acks=all answer
                "kafka-fsync": (lambda b, w, a: start_kafka(b, w, a, "log.flush.interval.messages=1\n"), None),
                "tansu": (start_tansu, None)}
    rows = []
    for name in [s.strip() for s in args.systems.split(",") if s.strip()]:
        t0 = time.monotonic()
        if name == "smq":
            rows += bench_smq(args, base)
        elif name in starters:
            start, binary = starters[name]
            rows.append(bench_system(name, start, binary, args, args.python, base))
        else:
            sys.exit(f"unknown system {name}")
        say(f"{name}: done in {time.monotonic() - t0:.0f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"{started:%Y-%m-%d-%H%M}-{platform.node()}"
    stem.with_suffix(".json").write_text(json.dumps({"started": started.isoformat(), "machine": machine,
                                                     "args": {k: str(v) for k, v in vars(args).items()},
                                                     "rows": rows}, indent=2))
    say(f"written: {stem}.json")
    print(write_report(rows, args, started, machine, stem))
    if args.keep:
        say(f"work dir kept: {base}")
    else:
        shutil.rmtree(base, ignore_errors=True)


def write_report(rows, args, started, machine, stem):
    """Writes `stem`.md and `stem`.png; returns the Markdown."""
    text = report(rows, args, started, machine)
    why = chart(rows, stem.with_suffix(".png"))
    if why is None:
        text += f"\nChart: `{stem.with_suffix('.png').name}`\n"
    else:
        text += f"\n({why})\n"
    stem.with_suffix(".md").write_text(text)
    say(f"written: {stem}.md" + ("" if why else ", .png"))
    return text


if __name__ == "__main__":
    main()
