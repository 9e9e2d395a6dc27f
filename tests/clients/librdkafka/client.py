#!/usr/bin/env python3
"""End-to-end client for Kelp: librdkafka through confluent-kafka (Python).

usage: client.py --bootstrap HOST:PORT --topic T create [--partitions N]
       client.py --bootstrap HOST:PORT --topic T produce --input FILE
       client.py --bootstrap HOST:PORT --topic T consume
       client.py --bootstrap HOST:PORT --topic T offsets --times T1,T2,...
       client.py --bootstrap HOST:PORT --topic T group --group G [--assignor NAME]
The contract (commands, record file, JSON lines) is the same for every client: see tests/README.md.
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from kelp_common import (TOPIC_CONFIG, emit, parse_args, read_groups, record_event,  # noqa: E402
                         record_json, stdin_closed)

from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer,  # noqa: E402
                             TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec  # noqa: E402

args = parse_args()
BOOT, TOPIC = args.bootstrap, args.topic
BASE = {"bootstrap.servers": BOOT, "broker.address.family": "v4"}


def wait(futs):
    return {k: f.result(timeout=30) for k, f in futs.items()}


def partitions(client):
    # a broker learns of a topic a moment after CreateTopics answers (Kafka: metadata propagation)
    deadline = time.time() + 30
    while True:
        t = client.list_topics(TOPIC, timeout=30).topics[TOPIC]
        if t.error is None:
            return sorted(t.partitions)
        if t.error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART or time.time() > deadline:
            raise KafkaException(t.error)
        time.sleep(0.2)


def create():
    admin = AdminClient(dict(BASE, **{"client.id": "kelp-e2e-rdkafka-admin"}))
    wait(admin.create_topics([NewTopic(TOPIC, args.partitions, 1, config=TOPIC_CONFIG)],
                            operation_timeout=30))
    emit({"created": TOPIC, "partitions": len(partitions(admin))})


def produce():
    for codec, recs in read_groups(args.input):
        p = Producer(dict(BASE, **{"client.id": "kelp-e2e-rdkafka-producer-" + codec,
                                   "compression.type": codec, "linger.ms": 1000,
                                   "message.max.bytes": 4194304}))
        acks = [None] * len(recs)

        def on_delivery(err, msg, i):
            if err:
                raise KafkaException(err)
            acks[i] = (msg.partition(), msg.offset(), msg.timestamp()[1])

        for i, r in enumerate(recs):
            p.produce(TOPIC, key=r["key"], value=r["value"], partition=r["partition"],
                      headers=r["headers"], timestamp=r["timestamp"],
                      on_delivery=lambda err, msg, i=i: on_delivery(err, msg, i))
        if p.flush(60) != 0:
            raise SystemExit("flush timed out")
        for r, (part, off, ts) in zip(recs, acks):
            emit(record_json(part, off, ts, r["key"], r["value"], r["headers"]))


def consume():
    # confluent-kafka insists on a group.id; assign() with explicit offsets and no commits never
    # joins the group
    c = Consumer(dict(BASE, **{"client.id": "kelp-e2e-rdkafka-consumer", "group.id": "kelp-e2e-unused",
                               "enable.auto.commit": False, "fetch.message.max.bytes": 4194304,
                               "enable.partition.eof": True}))
    parts = partitions(c)
    end = {p: c.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=30)[1] for p in parts}
    nxt = {p: 0 for p in parts}
    c.assign([TopicPartition(TOPIC, p, OFFSET_BEGINNING) for p in parts])
    deadline = time.time() + 60
    while any(nxt[p] < end[p] for p in parts):
        if time.time() > deadline:
            raise SystemExit("timeout: at %s, want %s" % (nxt, end))
        for m in c.consume(100, timeout=0.5):
            if m.error():
                if m.error().code() == -191:  # _PARTITION_EOF
                    continue
                raise KafkaException(m.error())
            if m.offset() >= end[m.partition()]:
                continue
            emit(record_json(m.partition(), m.offset(), m.timestamp()[1], m.key(), m.value(),
                             m.headers() or []))
            nxt[m.partition()] = m.offset() + 1
    c.close()


def offsets():
    admin = AdminClient(dict(BASE, **{"client.id": "kelp-e2e-rdkafka-admin"}))
    parts = partitions(admin)
    tps = [TopicPartition(TOPIC, p) for p in parts]

    def lookup(spec):
        res = wait(admin.list_offsets({tp: spec for tp in tps}))
        return {k.partition: v.offset for k, v in res.items()}

    earliest, latest = lookup(OffsetSpec.earliest()), lookup(OffsetSpec.latest())
    by_time = [(t, lookup(OffsetSpec.for_timestamp(t))) for t in args.times]
    for p in parts:
        emit({"partition": p, "earliest": earliest[p], "latest": latest[p],
              "times": [[t, o[p] if o[p] >= 0 else None] for t, o in by_time]})


def group():
    """A member of consumer group --group subscribed to the topic (assignor: --assignor, default
    cooperative-sticky) until stdin closes; prints the group event lines of tests/README.md."""
    stop = stdin_closed()
    c = Consumer(dict(BASE, **{"client.id": "kelp-e2e-rdkafka-member", "group.id": args.group,
                               "enable.auto.commit": False, "auto.offset.reset": "earliest",
                               "partition.assignment.strategy": args.assignor or "cooperative-sticky",
                               "session.timeout.ms": 10000, "heartbeat.interval.ms": 1000}))
    owned, pending = set(), {}

    def commit(parts):
        offs = [TopicPartition(TOPIC, p, pending[p]) for p in sorted(parts) if p in pending]
        if not offs:
            return
        try:
            c.commit(offsets=offs, asynchronous=False)
            emit({"event": "committed", "offsets": [[t.partition, t.offset] for t in offs]})
            for t in offs:
                if pending.get(t.partition) == t.offset:
                    del pending[t.partition]
        except KafkaException as e:
            sys.stderr.write("commit failed: %s\n" % e)
            emit({"event": "commit-failed", "error": str(e)})

    def on_assign(_c, parts):
        owned.update(p.partition for p in parts)
        emit({"event": "assigned", "added": sorted(p.partition for p in parts), "partitions": sorted(owned),
              "member_id": c.memberid()})

    def on_revoke(_c, parts):
        gone = {p.partition for p in parts}
        commit(gone)
        for p in gone:
            pending.pop(p, None)
        owned.difference_update(gone)
        emit({"event": "revoked", "partitions": sorted(gone)})

    def on_lost(_c, parts):
        gone = {p.partition for p in parts}
        for p in gone:
            pending.pop(p, None)
        owned.difference_update(gone)
        emit({"event": "lost", "partitions": sorted(gone)})

    c.subscribe([TOPIC], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    while not stop.is_set():
        for m in c.consume(100, timeout=0.2):
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(m.error())
            emit(record_event(m.partition(), m.offset(), m.key(), m.value()))
            pending[m.partition()] = m.offset() + 1
        commit(set(pending))
    commit(set(pending))
    c.close()
    emit({"event": "closed"})


{"create": create, "produce": produce, "consume": consume, "offsets": offsets,
 "group": group}[args.command]()
