#!/usr/bin/env python3
"""Where a librdkafka read's time goes when it comes where bench/run.py puts it: after the rest.

    bench/consume_order.py                        # kelp: bench/run.py's workloads, then 5 timed reads
    bench/consume_order.py --perf                 # each read under `perf record -g`, top symbols printed
    bench/consume_order.py --system kafka         # the same against Apache Kafka
    bench/consume_order.py --warmup 0 --no-perf-phases   # a fresh server: only the librdkafka writes

Starts one system as bench/run.py does and runs its workloads in its order: --warmup records at
acks=1, ProducerPerformance 1M at acks=all and at acks=1, ConsumerPerformance 5 times, librdkafka
1M at acks=all and 1M at acks=1 into topic `rd`. Then it reads the first 1M of `rd` --reads times
with the librdkafka generator (bench/loadgen.py) and prints, per read, records/s, the server's CPU
seconds, and how much of each topic the page cache holds (`fincore`).

Measured on 2026-12-05 (session 5, build 710d4d7), in this order, without perf:
- kelp: 662k, 876k, 919k, 907k, 974k records/s at 1.13, 0.66, 0.63, 0.64, 0.60 s of server CPU;
  the first read came from the disk (`rd` 1,016 of 1,972 MiB cached before it), the rest from the
  page cache (1,968 MiB).
- kafka: 1,196k, 1,081k, 1,163k, 1,289k, 1,177k at 0.43, 0.50, 0.29, 0.24, 0.27 s, all cached.
With --perf, 45% of the gateway's samples in a cached read were the kernel's copy out of the page
cache into the read buffer (`_copy_to_iter` under `pread`), and 11% the copy of that buffer into
the socket (`_copy_from_iter` under `writev`). Kafka's `sendfile` makes neither copy.

Kelp now sends them with `sendfile` too (runtime-tokio/src/file_region.rs). The same order, same
day: kelp 929k, 1,013k, 1,072k, 1,093k, 1,000k at 0.40, 0.38, 0.35, 0.34, 0.38 s; with --perf, no
copy among the top symbols (the socket's locks and softirqs, and the page-cache lookup
`filemap_get_read_batch`, lead). Needs what
bench/run.sh installs (the Kafka jars; confluent-kafka in --python), `fincore`, and for --perf,
`perf` as root.
"""
import argparse
import shlex
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import idle_pages as I
import run as R

RECORDS = 1_000_000
SIZE = 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--system", choices=["kelp", "kafka"], default="kelp")
    ap.add_argument("--flags", default="", help="extra kelp flags")
    ap.add_argument("--warmup", type=int, default=2_000_000)
    ap.add_argument("--no-perf-phases", action="store_true",
                    help="leave out the ProducerPerformance and ConsumerPerformance phases")
    ap.add_argument("--reads", type=int, default=5)
    ap.add_argument("--perf", action="store_true", help="record each read with `perf record -g`")
    ap.add_argument("--python", default=str(Path.home() / ".cache/kelp-tests/bench-venv/bin/python"),
                    help="a Python with confluent-kafka")
    ap.add_argument("--binary", default=str(R.ROOT / "target/release/kelp"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="consume-order-"))
    if args.system == "kafka":
        proc, port, _ = R.start_kafka(None, work, None)
    else:
        proc, port, _ = R.start_kelp(Path(args.binary), work, None, shlex.split(args.flags))
    b = f"127.0.0.1:{port}"
    try:
        R.wait_port(port, proc, 120)
        time.sleep(3)
        if args.warmup:
            R.create_topic(b, "warmup", work)
            R.perf_produce(b, "warmup", args.warmup, SIZE, "1", work)
        if not args.no_perf_phases:
            R.create_topic(b, "perf", work)
            for acks in ("all", "1"):
                R.settle()
                print(f"perf acks={acks}: {R.perf_produce(b, 'perf', RECORDS, SIZE, acks, work)['rate']:,.0f}/s",
                      flush=True)
            R.settle()
            rates = [R.perf_consume(b, "perf", RECORDS, work)["rate"] for _ in range(R.CONSUME_RUNS)]
            print("perf consume: " + ", ".join(f"{r:,.0f}" for r in rates), flush=True)
        R.create_topic(b, "rd", work)
        for acks in ("all", "1"):
            R.settle()
            out = R.loadgen(args.python, ["produce", b, "rd", RECORDS, SIZE, acks], work / "rd-produce.txt", 900)
            print(f"librdkafka acks={acks}: {out['rate']:,.0f}/s", flush=True)
        R.settle()
        print(f"before the reads: {I.page_cache(work)}", flush=True)
        for i in range(args.reads):
            cpu0 = R.cpu_seconds(proc.pid)
            with I.perf_recording(proc.pid, work / f"read{i}.data", args.perf, callgraph=True) as recorded:
                out = R.rd_consume(args.python, b, "rd", RECORDS, work)
            print(f"read {i}: {out['rate']:,.0f}/s, server CPU {R.cpu_seconds(proc.pid) - cpu0:.2f} s; "
                  f"{I.page_cache(work)}", flush=True)
            if recorded:
                for row in I.top_symbols(recorded):
                    print(f"    {row}")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
