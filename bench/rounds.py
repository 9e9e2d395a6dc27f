#!/usr/bin/env python3
"""Where an acks=all answer waits: the log writer's rounds, traced at the system-call level.

    bench/rounds.py                          # ProducerPerformance at 10,000 records/s for 15 s
    bench/rounds.py --client rd              # the librdkafka latency producer (bench/loadgen.py)
    bench/rounds.py --rate 0 --records 1000000   # throughput instead of a fixed rate
    bench/rounds.py --flags "--log-writers 2"    # extra kelp flags (writer 0 is the one traced)

Starts a release `kelp` (embedded log, defaults), runs one workload against a topic of 3
partitions, and meanwhile records writer 0's `pwrite64` and `fdatasync` calls with `perf trace`
(tracepoints, not ptrace). A round is what the writer does between two fsyncs of its write-ahead
file: the segment writes (page cache), the write-ahead write (direct I/O) and the fsync (a device
cache flush). Prints each part's percentiles and share of the traced time, the gaps in which the
writer waited for work, and how many partitions a round served, beside the client's own figures.

The trace slows the gateway (ProducerPerformance at acks=all measured about 110k records/s traced
against 133k untraced), so the times are inflated alike for every part: read them as shares.
Needs `perf` (bench/profile.sh installs it), root or kernel.perf_event_paranoid <= 1, and what
bench/run.sh installs (the Kafka jars; for --client rd, confluent-kafka in --python).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import run as R


def writer_threads(pid):
    tasks = Path(f"/proc/{pid}/task")
    return sorted((t.name for t in tasks.iterdir() if (t / "comm").read_text().startswith("kelp-log")), key=int)


def fd_kinds(pid):
    """What each open file descriptor of the gateway is: the write-ahead file, or a partition's segment."""
    kinds = {}
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.endswith(".wal"):
            kinds[fd.name] = "wal"
        elif target.endswith(".log"):
            kinds[fd.name] = "segment " + Path(target).parent.name
    return kinds


def parse(path):
    """(start ms, duration ms, call, fd) of each traced call, in order."""
    calls = []
    pattern = re.compile(r"\s*([\d.]+) \(\s*([\d.]+) ms\): \S*?(pwrite64|fdatasync)\(fd: (\d+)")
    for line in open(path, errors="replace"):
        m = pattern.match(line)
        if m:
            calls.append((float(m[1]), float(m[2]), m[3], m[4]))
    return calls


def percentiles(values):
    v = sorted(values)
    if not v:
        return "-"
    at = lambda q: v[min(len(v) - 1, int(len(v) * q))]
    return f"{at(0.5):.3f} / {at(0.9):.3f} / {at(0.99):.3f} / {v[-1]:.3f}"


def summarize(calls, kinds):
    """Rounds (first write after an fsync through the next fsync), gaps between them, and parts."""
    rounds, gaps, served = [], [], []
    start, last_end, partitions = None, None, set()
    for t, d, call, fd in calls:
        if call == "pwrite64":
            if start is None:
                start = t
                if last_end is not None:
                    gaps.append(t - last_end)
            if kinds.get(fd, "").startswith("segment"):
                partitions.add(fd)
        elif start is not None:
            rounds.append(t + d - start)
            served.append(len(partitions))
            start, last_end, partitions = None, t + d, set()
        else:
            last_end = t + d
    span = calls[-1][0] + calls[-1][1] - calls[0][0] if calls else 0
    parts = {
        "write-ahead write (direct)": [d for _, d, c, fd in calls if c == "pwrite64" and kinds.get(fd) == "wal"],
        "segment writes (page cache)": [d for _, d, c, fd in calls
                                        if c == "pwrite64" and kinds.get(fd, "").startswith("segment")],
        "fdatasync": [d for _, d, c, _ in calls if c == "fdatasync"],
    }
    return rounds, gaps, served, parts, span


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--client", choices=["perf", "rd"], default="perf")
    ap.add_argument("--rate", type=int, default=10_000, help="records/s, acks=all, linger.ms=0; 0: throughput")
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--records", type=int, default=1_000_000, help="for --rate 0")
    ap.add_argument("--python", default=str(R.CACHE / "venv/bin/python"), help="a Python with confluent-kafka")
    ap.add_argument("--binary", default=str(R.ROOT / "target/release/kelp"))
    ap.add_argument("--flags", default="", help="extra kelp flags")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kelp-rounds-"))
    proc, port, _ = R.start_kelp(Path(args.binary), work, None, args.flags.split())
    trace = work / "trace.txt"
    tracer = None
    try:
        if not R.wait_port(port, proc, 30):
            raise SystemExit(f"kelp did not start: {R.tail(work / 'server.log')}")
        bootstrap = f"127.0.0.1:{port}"
        R.create_topic(bootstrap, "rounds", work)
        writer = writer_threads(proc.pid)[0]
        tracer = subprocess.Popen(["perf", "trace", "-o", str(trace), "-e", "pwrite64,fdatasync", "-t", writer],
                                  stderr=subprocess.DEVNULL)
        time.sleep(1)
        if args.rate and args.client == "perf":
            res = R.perf_produce(bootstrap, "rounds", args.rate * args.seconds, 1024, "all", work,
                                 throughput=args.rate, warmup=args.rate * R.WARMUP_S, props=R.LATENCY_PROPS)
            client = f"{res['rate']:,.0f} records/s, p50/p99/p99.9 {res['p50_ms']:.0f}/{res['p99_ms']:.0f}/" \
                     f"{res['p999_ms']:.0f} ms (ProducerPerformance: whole ms)"
        elif args.rate:
            res = R.loadgen(args.python, ["latency", bootstrap, "rounds", args.rate, args.seconds, 1024],
                            work / "rd.txt", 300)
            ack = res["ack"]
            client = f"{res['rate']:,.0f} records/s, ack p50/p99/p99.9 {ack['p50_ms']:.2f}/{ack['p99_ms']:.2f}/" \
                     f"{ack['p999_ms']:.2f} ms"
        elif args.client == "perf":
            res = R.perf_produce(bootstrap, "rounds", args.records, 1024, "all", work)
            client = f"{res['rate']:,.0f} records/s"
        else:
            res = R.loadgen(args.python, ["produce", bootstrap, "rounds", args.records, 1024, "all"],
                            work / "rd.txt", 900)
            client = f"{res['rate']:,.0f} records/s"
        kinds = fd_kinds(proc.pid)
        tracer.terminate()
        tracer.wait()
        rounds, gaps, served, parts, span = summarize(parse(trace), kinds)
        print(f"client ({args.client}, traced): {client}")
        print(f"writer 0: {len(rounds):,} rounds in {span / 1000:.1f} s of trace, busy in rounds "
              f"{sum(rounds) / max(span, 1e-9):.0%}; partitions a round served: "
              + ", ".join(f"{k}: {v}" for k, v in sorted(Counter(served).items())))
        print("| part | count | ms p50 / p90 / p99 / max | share of round time |")
        print("|---|---|---|---|")
        total = sum(rounds) or 1e-9
        print(f"| round | {len(rounds):,} | {percentiles(rounds)} | 100% |")
        for name, values in parts.items():
            print(f"| {name} | {len(values):,} | {percentiles(values)} | {sum(values) / total:.0%} |")
        print(f"| waiting for work (between rounds) | {len(gaps):,} | {percentiles(gaps)} | - |")
        print(json.dumps({"client": res, "rounds": len(rounds), "span_ms": span,
                          "busy": sum(rounds) / max(span, 1e-9)}))
    finally:
        if tracer and tracer.poll() is None:
            tracer.terminate()
        proc.kill()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
