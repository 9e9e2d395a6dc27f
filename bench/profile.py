#!/usr/bin/env python3
"""Where the gateway's CPU goes under one produce workload: a perf profile and a flame graph.

Run through bench/profile.sh, which builds the profiling binaries and installs perf and inferno.
It starts a Kelp binary on 127.0.0.1 (embedded log), creates a topic of 3 partitions, samples the
gateway's threads with `perf record -g` (user and kernel stacks) while Apache Kafka's
ProducerPerformance sends --records values of --size bytes at --acks, and writes, in --out-dir:

  <stem>.svg   the flame graph (inferno), one tower per gateway thread
  <stem>.md    the run's figures and the sample shares: by thread, kernel vs user, the stacks that
               are in an fsync, and the hottest leaf functions
  <stem>.folded  the collapsed stacks, for inferno-diff-folded against another run

A second run with `--flag=--fsync-acks-all=false` (Kafka's durability) tells what the fsyncs cost.
"""
import argparse
import collections
import datetime
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as harness  # noqa: E402  (bench/run.py: the side-by-side harness's helpers)

# Frames that mean "this sample is in an fsync": the syscalls and the file system's sync path.
FSYNC_FRAMES = ("__x64_sys_fdatasync", "__x64_sys_fsync", "do_fsync", "ext4_sync_file")


def summarise(folded):
    """CPU shares from collapsed stacks (`thread;frame;...;leaf weight`, kernel frames `_[k]`; the
    weight of a cpu-clock sample is its period in nanoseconds)."""
    s = {k: collections.Counter() for k in ("threads", "leaves", "calls", "fsync_paths")}
    total = kernel = fsync = 0
    for line in folded.splitlines():
        stack, _, weight = line.rpartition(" ")
        if not stack or not weight.isdigit():
            continue
        n = int(weight)
        # kernel frames lose their annotation and their compiler suffixes (.isra.0, .constprop.0)
        frames = [f.removesuffix("_[k]").split(".")[0] for f in stack.split(";")]
        thread = frames[0]
        s["threads"][thread] += n
        s["leaves"][stack.rpartition(";")[2]] += n
        total += n
        kernel += n if stack.endswith("_[k]") else 0
        # what the thread was doing: the system call it was in, or else user code
        call = next((f for f in frames if f.startswith(("__x64_sys_", "__do_sys_"))), "(user code, interrupts)")
        s["calls"][(thread.rstrip("0123456789"), call)] += n
        if any(f in FSYNC_FRAMES for f in frames):
            fsync += n
            # the file system's sync function and what it spent the time in, three frames down
            at = next((i for i, f in enumerate(frames) if f.endswith("_sync_file")), None)
            if at is not None:
                s["fsync_paths"][" → ".join(frames[at + 1:at + 4]) or frames[at]] += n
    return total, kernel, fsync, s


def share(n, total):
    return f"{100 * n / total:.1f}%" if total else "-"


def report(args, binary, result, cpu_s, wall_s, summary, stem, machine):
    total, kernel, fsync, s = summary
    lines = [
        f"# Where the gateway's CPU goes: {binary.name} {' '.join(args.flag)}".rstrip(),
        "",
        machine,
        "",
        f"Workload: ProducerPerformance, {args.records:,} records of {args.size} B, acks={args.acks}, "
        f"topic of {harness.PARTITIONS} partitions, producer defaults, on 127.0.0.1. "
        f"Sampled with `perf record -g -e cpu-clock -F {args.frequency}` on the gateway's threads.",
        "",
        f"- throughput: {result['rate']:,.0f} records/s ({result['mb_s']:.1f} MB/s); "
        f"produce-ack p50 / p99 {result['p50_ms']:.0f} / {result['p99_ms']:.0f} ms",
        f"- gateway CPU over the workload: {cpu_s:.2f} s in {wall_s:.1f} s "
        f"({1e6 * cpu_s / args.records:.2f} µs a record); sampled: {total / 1e9:.2f} s",
        f"- of the samples: in the kernel {share(kernel, total)}; under an fsync "
        f"(`{'`, `'.join(FSYNC_FRAMES)}`) {share(fsync, total)}",
        "",
        f"Flame graph: `{stem}.svg` (collapsed stacks: `{stem}.folded`, not kept in git).",
        "",
        "Threads: the main thread (`kelp`, `kelp-smol`) runs the gateway's loop, its core and the "
        "sockets, and with `--runtime-threads` above 1 so do the runtime's workers (`tokio-rt-worker`, "
        "`kelp-smol-N`); `kelp-log-N` are the log writers (`--log-writers`), which write and fsync; "
        "reads of the log run on the runtime's blocking pool.",
        "",
        "| thread | share |",
        "|---|---|",
    ]
    lines += [f"| {t} | {share(n, total)} |" for t, n in s["threads"].most_common(12)]
    lines += ["", "| thread (pool) | in | share |", "|---|---|---|"]
    lines += [f"| {t} | `{c}` | {share(n, total)} |" for (t, c), n in s["calls"].most_common(12)]
    if fsync:
        lines += ["", "| inside the fsyncs (the file system's sync function, three frames down) | share of fsync |",
                  "|---|---|"]
        lines += [f"| `{p}` | {share(n, fsync)} |" for p, n in s["fsync_paths"].most_common(8)]
    lines += ["", "| hottest leaf functions (`_[k]`: kernel) | share |", "|---|---|"]
    lines += [f"| `{f}` | {share(n, total)} |" for f, n in s["leaves"].most_common(15)]
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", type=Path, default=harness.ROOT / "target/profiling/kelp",
                   help="the gateway binary (default: target/profiling/kelp)")
    p.add_argument("--flag", action="append", default=[],
                   help="a flag for the gateway, e.g. --flag=--fsync-acks-all=false (repeatable)")
    p.add_argument("--records", type=int, default=1_000_000)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--acks", default="all", choices=["all", "1", "0"])
    p.add_argument("--frequency", type=int, default=999, help="samples a second a thread")
    p.add_argument("--out-dir", type=Path, default=harness.ROOT / "bench/results")
    args = p.parse_args()
    if not args.bin.exists():
        sys.exit(f"{args.bin} does not exist (bench/profile.sh builds it)")

    label = "-".join([args.bin.name, f"acks{args.acks}"] + [f.lstrip("-").replace("=", "-") for f in args.flag])
    stem = f"profile-{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d-%H%M}-{platform.node()}-{label}"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="kelp-profile-"))
    machine = harness.machine_description(work)
    proc, port, _ = harness.start_kelp(args.bin, work, None, args.flag)
    perf = None
    try:
        if not harness.wait_port(port, proc, 30):
            sys.exit("the gateway did not start:\n" + harness.tail(work / "server.log"))
        bootstrap = f"127.0.0.1:{port}"
        harness.create_topic(bootstrap, "profile", work)
        perf = subprocess.Popen(["perf", "record", "-g", "-e", "cpu-clock", "-F", str(args.frequency),
                                 "-p", str(proc.pid), "-o", str(work / "perf.data")],
                                stdout=subprocess.DEVNULL, stderr=open(work / "perf.log", "w"))
        time.sleep(1)  # perf attaches to every thread before the load starts
        if perf.poll() is not None:
            sys.exit("perf record failed (kernel.perf_event_paranoid?):\n" + harness.tail(work / "perf.log"))
        cpu0, t0 = harness.cpu_seconds(proc.pid), time.monotonic()
        harness.say(f"producing {args.records:,} records at acks={args.acks} under perf")
        result = harness.perf_produce(bootstrap, "profile", args.records, args.size, args.acks, work)
        cpu_s, wall_s = harness.cpu_seconds(proc.pid) - cpu0, time.monotonic() - t0
        perf.send_signal(signal.SIGINT)
        perf.wait(60)
    finally:
        if perf is not None and perf.poll() is None:
            perf.kill()
        proc.terminate()
        proc.wait(30)

    harness.say("collapsing stacks and drawing the flame graph")
    script = subprocess.run(["perf", "script", "-i", str(work / "perf.data")], capture_output=True, check=True)
    folded = subprocess.run(["inferno-collapse-perf", "--kernel"], input=script.stdout, capture_output=True,
                            check=True).stdout
    (args.out_dir / f"{stem}.folded").write_bytes(folded)
    title = f"{args.bin.name} {' '.join(args.flag)}: ProducerPerformance acks={args.acks}, " \
            f"{result['rate']:,.0f} records/s"
    svg = subprocess.run(["inferno-flamegraph", "--title", title, "--minwidth", "0.2"], input=folded,
                         capture_output=True, check=True).stdout
    (args.out_dir / f"{stem}.svg").write_bytes(svg)
    text = report(args, args.bin, result, cpu_s, wall_s, summarise(folded.decode(errors="replace")), stem,
                  machine)
    (args.out_dir / f"{stem}.md").write_text(text)
    print(text)
    harness.say(f"wrote {args.out_dir / stem}.{{md,svg,folded}}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("NO_COLOR", "1")
    main()
