#!/usr/bin/env python3
"""librdkafka load generator for bench/run.py (confluent-kafka), so that no single client decides.

    loadgen.py produce BOOTSTRAP TOPIC RECORDS SIZE ACKS     throughput of a producer at full speed
    loadgen.py consume BOOTSTRAP TOPIC RECORDS [SECONDS]     throughput of a consumer from the start; with
                                                             SECONDS, it stops reading after that long
                                                             and reports the rate of what it read
    loadgen.py latency BOOTSTRAP TOPIC RATE SECONDS SIZE     at a fixed rate (acks=all): produce-ack and
                                                             end-to-end latency percentiles, after a
                                                             warm-up of WARMUP_S seconds at that rate

Prints one JSON object. Latencies are measured in this process with one monotonic clock: the
producer writes its send time into each value, the consumer (assigned to every partition at
the start, before the first send) subtracts it on arrival.
"""
import json
import struct
import sys
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition


def percentiles(samples_ns):
    if not samples_ns:
        return {}
    s = sorted(samples_ns)

    def at(q):
        return s[min(len(s) - 1, int(q * len(s)))] / 1e6

    return {"p50_ms": at(0.50), "p99_ms": at(0.99), "p999_ms": at(0.999), "max_ms": s[-1] / 1e6}


def send(p, topic, value, on_delivery):
    """Produces one record, waiting while the producer's queue is full (a server that acks slowly
    holds it up; the achieved rate then says so)."""
    while True:
        try:
            p.produce(topic, value, on_delivery=on_delivery)
            break
        except BufferError:
            p.poll(0.01)
    p.poll(0)


def produce(bootstrap, topic, records, size, acks):
    p = Producer({"bootstrap.servers": bootstrap, "acks": acks, "linger.ms": 5,
                  "queue.buffering.max.messages": 500000, "compression.type": "none"})
    value = b"x" * size
    failed = [0]

    def done(err, _msg):
        if err is not None:
            failed[0] += 1

    start = time.monotonic()
    for _ in range(records):
        send(p, topic, value, done)
    left = p.flush(120)
    secs = time.monotonic() - start
    ok = records - failed[0] - left
    return {"records": ok, "failed": failed[0] + left, "seconds": secs, "rate": ok / secs,
            "mb_s": ok * size / secs / 2**20}


def partitions_of(bootstrap, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "loadgen-meta"})
    md = c.list_topics(topic, timeout=30)
    c.close()
    return sorted(md.topics[topic].partitions)


def consume(bootstrap, topic, records, max_seconds=None):
    # fetch.queue.backoff.ms: once its local queue is over queued.max.messages.kbytes, librdkafka
    # (>= 2.3) waits this long before it fetches again, 1 s by default; the queue drains in far less
    # here, so a run that crossed the threshold sat idle for most of that second, whatever the server
    # (runs of 1M records took 1.2-3.4 s against the same server). 10 ms keeps the fetch rate measured.
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"loadgen-{time.time_ns()}",
                  "enable.auto.commit": False, "fetch.max.bytes": 52428800,
                  "fetch.queue.backoff.ms": 10})
    c.assign([TopicPartition(topic, p, 0) for p in partitions_of(bootstrap, topic)])
    got = nbytes = 0
    start = None
    deadline = time.monotonic() + 300
    capped = False
    while got < records and time.monotonic() < deadline:
        # a slow server is measured over max_seconds of reading, not over all the records (Tansu and
        # the Go gateway took 48 s and 62 s for theirs); the rate is of what was read meanwhile
        if max_seconds is not None and start is not None and time.monotonic() - start >= max_seconds:
            capped = True
            break
        for m in c.consume(10000, 1.0):
            if m.error():
                continue
            if start is None:
                start = time.monotonic()
            got += 1
            nbytes += len(m.value() or b"")
    secs = time.monotonic() - (start or time.monotonic())
    c.close()
    return {"records": got, "seconds": secs, "rate": got / secs if secs else 0,
            "mb_s": nbytes / secs / 2**20 if secs else 0, "capped": capped}


WARMUP_S = 2


def latency(bootstrap, topic, rate, seconds, size):
    warmup = int(rate * WARMUP_S)
    total = warmup + int(rate * seconds)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"loadgen-{time.time_ns()}",
                  "enable.auto.commit": False, "fetch.wait.max.ms": 10,
                  "socket.nagle.disable": True})
    c.assign([TopicPartition(topic, p, 0) for p in partitions_of(bootstrap, topic)])
    e2e = []
    stop = threading.Event()

    def read():
        # one message per poll: consume(n, timeout) would hold messages back until n arrived
        while not stop.is_set() and len(e2e) < total:
            m = c.poll(0.1)
            if m is not None and not m.error() and m.value():
                e2e.append(time.monotonic_ns() - struct.unpack_from(">q", m.value())[0])

    # a daemon: should the producer fail, the process must still exit (a reader still waiting for
    # its records kept a run against Tansu alive until the harness's timeout)
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    # no Nagle: a small request must not wait for the previous one's TCP ack. At most 5 requests
    # in flight, as the Java client: with librdkafka's default (1,000,000) and linger.ms=0 every
    # record goes alone in a request of its own, and a server that takes a connection's requests
    # one at a time, as Kafka does, queues them: Kafka at 10k records/s answered in 157-262 ms at
    # the median that way, against 0.9-1.0 ms with 5 (2026-12-05). That measured the client's
    # setting, not the server.
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0,
                  "socket.nagle.disable": True, "max.in.flight.requests.per.connection": 5})
    acks = []
    pad = b"x" * max(0, size - 8)

    def done(err, msg, sent):
        if err is None:
            acks.append(time.monotonic_ns() - sent)

    start = time.monotonic()
    for i in range(total):
        due = start + i / rate
        while True:
            now = time.monotonic()
            if now >= due:
                break
            p.poll(min(due - now, 0.001))
        sent = time.monotonic_ns()
        send(p, topic, struct.pack(">q", sent) + pad, lambda err, msg, sent=sent: done(err, msg, sent))
    p.flush(60)
    reader.join(30)
    stop.set()
    reader.join()
    c.close()
    achieved = total / (time.monotonic() - start)
    return {"sent": total, "acked": len(acks), "received": len(e2e), "rate": achieved,
            # the warm-up's records (connections, metadata, first batches) are not counted
            "ack": percentiles(acks[warmup:]), "e2e": percentiles(e2e[warmup:])}


def main(argv):
    cmd = argv[1] if len(argv) > 1 else ""
    if cmd == "produce" and len(argv) == 7:
        out = produce(argv[2], argv[3], int(argv[4]), int(argv[5]), argv[6])
    elif cmd == "consume" and len(argv) in (5, 6):
        out = consume(argv[2], argv[3], int(argv[4]), float(argv[5]) if len(argv) == 6 else None)
    elif cmd == "latency" and len(argv) == 7:
        out = latency(argv[2], argv[3], float(argv[4]), float(argv[5]), int(argv[6]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
