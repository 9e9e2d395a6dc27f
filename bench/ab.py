#!/usr/bin/env python3
"""A/B runs of Kelp builds or flags under ProducerPerformance, alternating, for one question at a
time (bench/run.py measures every system once; this measures variants of Kelp several times each,
in turn, so that a noisy machine drifts across all of them alike).

    bench/ab.py --rounds 3 --partitions 24 -- "--wal-bytes 0" "" "--log-writers 8"
    bench/ab.py --acks 1 --records 500000 -- "" "--log-writers 8"
    bench/ab.py -- "@/tmp/kelp-before" ""       # a build kept from before a change, and this one
    bench/ab.py --rate 10000 -- "@/tmp/kelp-before" ""   # latency at a fixed rate instead
    bench/ab.py --consume -- "" "--malloc-keep-mib 0"    # reads of what was written, not writes

Each variant is a string of extra `kelp` flags ("" is the defaults); one that starts with `@PATH`
runs the binary at PATH instead of `--binary` (two builds side by side: `"@/tmp/kelp-old" ""`), and
words `NAME=VALUE` go to the gateway's environment (`"KELP_LOG_WRITERS=8"`). Per run it prints records/s,
the tool's p99, and, from the first to the last fifth of a second in which the gateway used more
than a tenth of a core (`run.measured`: a JVM client's start-up is left out), the gateway's CPU
seconds and the whole machine's busy and iowait CPU seconds (on a small machine the client's share
decides much). Needs what bench/run.sh installs (the Kafka
jars: `bash tests/install.sh system kafka`) and a release build of `kelp`.
"""
import argparse
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

import run as R


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--partitions", type=int, default=R.PARTITIONS)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--acks", default="all")
    ap.add_argument("--client", choices=["perf", "rd"], default="perf",
                    help="ProducerPerformance, or the librdkafka generator (bench/loadgen.py)")
    ap.add_argument("--python", default=sys.executable, help="a Python with confluent-kafka (for --client rd)")
    ap.add_argument("--preload", type=int, default=0,
                    help="records produced (acks=1, ProducerPerformance) to another topic first, as the "
                         "earlier phases of bench/run.py do: their writeback is still under way")
    ap.add_argument("--rate", type=int, default=0,
                    help="a fixed rate (records/s, acks=all unless --acks, linger.ms=0) for about "
                         "--seconds, as bench/run.py's latency phase: prints p50/p99/p99.9 (perf only)")
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--consume", action="store_true",
                    help="write --records at acks=1 unmeasured, then measure reading them back "
                         "(ConsumerPerformance, or the librdkafka consumer with --client rd); prints "
                         "the gateway's minor page faults too")
    ap.add_argument("--binary", default=str(Path(__file__).resolve().parent.parent / "target/release/kelp"))
    ap.add_argument("variants", nargs="+", help='extra kelp flags per variant, e.g. "--wal-bytes 0" ""')
    args = ap.parse_args()
    R.PARTITIONS = args.partitions
    for rnd in range(args.rounds):
        for flags in args.variants:
            work = Path(tempfile.mkdtemp(prefix="kelp-ab-"))
            words = shlex.split(flags)
            binary = args.binary
            if words and words[0].startswith("@"):
                binary, words = words[0][1:], words[1:]
            env = dict(w.split("=", 1) for w in words if "=" in w and not w.startswith("-"))
            words = [w for w in words if not ("=" in w and not w.startswith("-"))]
            saved = dict(os.environ)
            os.environ.update(env)
            try:
                proc, port, _ = R.start_kelp(Path(binary), work, None, words)
            finally:
                os.environ.clear()
                os.environ.update(saved)
            try:
                if not R.wait_port(port, proc, 30):
                    raise RuntimeError("kelp did not start listening")
                bootstrap = f"127.0.0.1:{port}"
                if args.preload:
                    R.create_topic(bootstrap, "pre", work)
                    R.perf_produce(bootstrap, "pre", args.preload, 1024, "1", work)
                R.create_topic(bootstrap, "ab", work)
                if args.consume:
                    R.perf_produce(bootstrap, "ab", args.records, 1024, "1", work)
                    R.settle()
                faults0 = R.minor_faults(proc.pid)
                if args.consume and args.client == "rd":
                    job = lambda: R.rd_consume(args.python, bootstrap, "ab", args.records, work)
                elif args.consume:
                    job = lambda: R.perf_consume(bootstrap, "ab", args.records, work)
                elif args.rate:
                    job = lambda: R.perf_produce(bootstrap, "ab", args.rate * args.seconds, 1024, args.acks, work,
                                                 throughput=args.rate, warmup=args.rate * R.WARMUP_S,
                                                 props=R.LATENCY_PROPS)
                elif args.client == "rd":
                    job = lambda: R.loadgen(args.python, ["produce", bootstrap, "ab", args.records, 1024, args.acks],
                                            work / "rd-produce.txt", 900)
                else:
                    job = lambda: R.perf_produce(bootstrap, "ab", args.records, 1024, args.acks, work)
                res = R.measured(proc.pid, job)
                extra = f", p99 {res['p99_ms']:.0f} ms" if "p99_ms" in res else ""
                if args.rate:
                    extra = f", p50/p99/p99.9 {res['p50_ms']:.0f}/{res['p99_ms']:.0f}/{res['p999_ms']:.0f} ms"
                if args.consume:
                    extra = f", {R.minor_faults(proc.pid) - faults0:,} minor faults"
                cpu = res.get("cpu") or {}
                if cpu:
                    extra += (f", while kelp worked ({cpu['wall_s']:.1f} s): kelp CPU {cpu['server_s']:.1f} s, "
                              f"machine busy {cpu['busy_s']:.1f} s, iowait {cpu['iowait_s']:.1f} s")
                print(f"round {rnd} [{flags}]: {res['rate']:,.0f} records/s{extra}", flush=True)
            except Exception as e:  # one failed run is reported, the others go on
                print(f"round {rnd} [{flags}]: failed: {e}; log: {R.tail(work / 'server.log')}", flush=True)
            finally:
                proc.kill()
                proc.wait()
                shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
