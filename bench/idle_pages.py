#!/usr/bin/env python3
"""Why the first acks=all run after other work is slow: writes into pages left unused for a while.

    bench/idle_pages.py                           # 3M records at acks=1 first, then 2 runs of 1M at acks=all
    bench/idle_pages.py --preload 1000000 --runs 3
    bench/idle_pages.py --flags "--page-cache-mib 0"   # extra kelp flags
    bench/idle_pages.py --perf                    # each run under `perf record`: where the gateway's CPU goes
    bench/idle_pages.py --system kafka            # the same against Apache Kafka (bench/run.sh's set-up)

Starts a release `kelp` (embedded log), writes --preload records at acks=1 with ProducerPerformance
to topic `w`, then runs the librdkafka generator (bench/loadgen.py) at acks=all into a new topic
`rd`, --runs times. After each step it prints records/s, the gateway's CPU seconds, how much of each
topic's segment files the page cache holds (`fincore`) and the kernel's Cached, Dirty and Writeback.
With --perf, it also prints the top symbols of each run's `perf record`.

Measured on 2026-12-05: the page cache stayed flat at 1.18-1.22 GiB (Kelp's page-cache window
dropped the older topic as the new one grew). Even so, the first acks=all run measured 292k-301k
records/s at 2.6 s of gateway CPU, and the next ones 505k-523k at 1.0-1.2 s. The kernel's copy into
page-cache pages (`copy_folio_from_iter_atomic`) was 56.6% of the first run's samples and 18.0% of
the second's. The first run writes into pages freed from data unused for 12 s or more, the later
ones into pages written 2-4 s before. Needs what bench/run.sh installs (the Kafka jars;
confluent-kafka in --python), `fincore` (util-linux), and for --perf, `perf` as root.
"""
import argparse
import contextlib
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import run as R


def page_cache(work):
    """Per topic, MiB of its segment files in the page cache and their size; then /proc/meminfo."""
    files = sorted(str(p) for p in (work / "data").rglob("*") if p.is_file())
    out = subprocess.run(["fincore", "-b", "-n", "-o", "RES,SIZE,FILE"] + files,
                         capture_output=True, text=True).stdout
    topics = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 3:
            topic = Path(f[2]).parent.name.rsplit("-", 1)[0]
            res, size = topics.get(topic, (0, 0))
            topics[topic] = (res + int(f[0]), size + int(f[1]))
    mem = {line.split(":")[0]: int(line.split()[1]) >> 10 for line in open("/proc/meminfo")}
    cached = " ".join(f"{t} {r >> 20}/{s >> 20} MiB" for t, (r, s) in sorted(topics.items()))
    return (f"{cached} | Cached {mem['Cached']} MiB, Dirty {mem['Dirty']}, "
            f"Writeback {mem['Writeback']}")


@contextlib.contextmanager
def perf_recording(pid, data, enabled, callgraph=False):
    """`perf record` of process `pid` into `data` while the block runs, when `enabled`; yields
    the path of the data then (None otherwise)."""
    if not enabled:
        yield None
        return
    recorder = subprocess.Popen(["perf", "record", "-q"] + (["-g"] if callgraph else [])
                                + ["-o", str(data), "-p", str(pid)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        yield data
    finally:
        recorder.send_signal(signal.SIGINT)
        recorder.wait()


def top_symbols(data, n=8):
    out = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--no-children", "-g", "none",
                          "--sort", "sym"],
                         capture_output=True, text=True).stdout
    rows = [line.strip() for line in out.splitlines() if line.strip() and not line.startswith("#")]
    return rows[:n]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preload", type=int, default=3_000_000)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--flags", default="", help="extra kelp flags")
    ap.add_argument("--perf", action="store_true", help="record each run with `perf record`")
    ap.add_argument("--python", default=str(Path.home() / ".cache/kelp-tests/bench-venv/bin/python"),
                    help="a Python with confluent-kafka")
    ap.add_argument("--binary", default=str(R.ROOT / "target/release/kelp"))
    ap.add_argument("--system", choices=["kelp", "kafka"], default="kelp")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="idle-pages-"))
    if args.system == "kafka":
        proc, port, _ = R.start_kafka(None, work, None)
    else:
        proc, port, _ = R.start_kelp(Path(args.binary), work, None, shlex.split(args.flags))
    try:
        R.wait_port(port, proc, 120)
        bootstrap = f"127.0.0.1:{port}"
        R.create_topic(bootstrap, "w", work)
        t0 = time.monotonic()
        R.perf_produce(bootstrap, "w", args.preload, 1024, "1", work)
        print(f"preload of {args.preload:,} at acks=1 in {time.monotonic() - t0:.1f} s: {page_cache(work)}",
              flush=True)
        R.create_topic(bootstrap, "rd", work)
        for i in range(args.runs):
            cpu0 = R.cpu_seconds(proc.pid)
            with perf_recording(proc.pid, work / f"run{i}.data", args.perf) as recorded:
                res = R.loadgen(args.python, ["produce", bootstrap, "rd", args.records, 1024, "all"],
                                work / f"rd-{i}.txt", 900)
            print(f"acks=all run {i}: {res['rate']:,.0f} records/s, server CPU "
                  f"{R.cpu_seconds(proc.pid) - cpu0:.2f} s; {page_cache(work)}", flush=True)
            if recorded:
                for row in top_symbols(recorded):
                    print(f"    {row}")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
