#!/usr/bin/env python3
"""End-to-end client for Kelp: kafka-python 3.x (pure Python).

usage: client.py --bootstrap HOST:PORT --topic T create [--partitions N]
       client.py --bootstrap HOST:PORT --topic T produce --input FILE
       client.py --bootstrap HOST:PORT --topic T consume
       client.py --bootstrap HOST:PORT --topic T offsets --times T1,T2,...
       client.py --bootstrap HOST:PORT --topic T group --group G [--assignor NAME]
The contract (commands, record file, JSON lines) is the same for every client: see tests/README.md.
kafka-python cannot send a header with a null value (the harness leaves those out of its record file).
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from kelp_common import (TOPIC_CONFIG, emit, parse_args, read_groups, record_event,  # noqa: E402
                         record_json, stdin_closed)

from kafka import (ConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer, KafkaProducer,  # noqa: E402
                   TopicPartition)
from kafka.admin import NewTopic  # noqa: E402
from kafka.coordinator.assignors.cooperative_sticky import CooperativeStickyAssignor  # noqa: E402
from kafka.coordinator.assignors.range import RangePartitionAssignor  # noqa: E402
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor  # noqa: E402
from kafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor  # noqa: E402
from kafka.structs import OffsetAndMetadata  # noqa: E402

args = parse_args()
BOOT, TOPIC = args.bootstrap, args.topic


def create():
    admin = KafkaAdminClient(bootstrap_servers=BOOT, client_id="kelp-e2e-kpy-admin")
    admin.create_topics([NewTopic(TOPIC, args.partitions, 1, topic_configs=TOPIC_CONFIG)],
                        timeout_ms=30000)
    n = len(admin.describe_topics([TOPIC])[0]["partitions"])
    admin.close()
    emit({"created": TOPIC, "partitions": n})


def produce():
    for codec, recs in read_groups(args.input):
        p = KafkaProducer(bootstrap_servers=BOOT, client_id="kelp-e2e-kpy-producer-" + codec,
                          compression_type=None if codec == "none" else codec, linger_ms=1000,
                          max_request_size=4194304)
        futs = [p.send(TOPIC, key=r["key"], value=r["value"], partition=r["partition"],
                       headers=r["headers"], timestamp_ms=r["timestamp"]) for r in recs]
        p.flush(60)
        for r, f in zip(recs, futs):
            m = f.get(timeout=60)
            emit(record_json(m.partition, m.offset, m.timestamp, r["key"], r["value"], r["headers"]))
        p.close()


def consumer():
    return KafkaConsumer(bootstrap_servers=BOOT, client_id="kelp-e2e-kpy-consumer",
                         enable_auto_commit=False, max_partition_fetch_bytes=4194304)


def partitions(c):
    deadline = time.time() + 30
    while True:
        ps = c.partitions_for_topic(TOPIC)
        if ps:
            return [TopicPartition(TOPIC, p) for p in sorted(ps)]
        if time.time() > deadline:
            raise SystemExit("no metadata for " + TOPIC)
        time.sleep(0.2)


def consume():
    c = consumer()
    tps = partitions(c)
    end = c.end_offsets(tps)
    c.assign(tps)
    c.seek_to_beginning(*tps)
    nxt = {tp: c.position(tp) for tp in tps}
    deadline = time.time() + 60
    while any(nxt[tp] < end[tp] for tp in tps):
        if time.time() > deadline:
            raise SystemExit("timeout: at %s, want %s" % (nxt, end))
        for tp, msgs in c.poll(timeout_ms=500).items():
            for m in msgs:
                if m.offset >= end[tp]:
                    continue
                emit(record_json(m.partition, m.offset, m.timestamp, m.key, m.value, m.headers))
                nxt[tp] = m.offset + 1
    c.close()


def offsets():
    c = consumer()
    tps = partitions(c)
    earliest, latest = c.beginning_offsets(tps), c.end_offsets(tps)
    by_time = [(t, c.offsets_for_times({tp: t for tp in tps})) for t in args.times]
    for tp in tps:
        emit({"partition": tp.partition, "earliest": earliest[tp], "latest": latest[tp],
              "times": [[t, o[tp].offset if o[tp] is not None else None] for t, o in by_time]})
    c.close()


ASSIGNORS = {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor,
             "sticky": StickyPartitionAssignor, "cooperative-sticky": CooperativeStickyAssignor}


def group():
    """A member of consumer group --group subscribed to the topic (assignor: --assignor, default the
    client's list: range, roundrobin) until stdin closes; prints the group event lines of
    tests/README.md. Offsets are committed after each poll (the rebalance callbacks run on the
    client's IO loop, where a blocking commit is not allowed)."""
    stop = stdin_closed()
    strategy = (ASSIGNORS[args.assignor],) if args.assignor else (RangePartitionAssignor,
                                                                  RoundRobinPartitionAssignor)
    c = KafkaConsumer(bootstrap_servers=BOOT, client_id="kelp-e2e-kpy-member", group_id=args.group,
                      enable_auto_commit=False, auto_offset_reset="earliest",
                      partition_assignment_strategy=strategy, session_timeout_ms=10000,
                      heartbeat_interval_ms=1000)
    owned = set()

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            gone = {tp.partition for tp in revoked}
            owned.difference_update(gone)
            emit({"event": "revoked", "partitions": sorted(gone)})

        def on_partitions_assigned(self, assigned):
            owned.update(tp.partition for tp in assigned)
            emit({"event": "assigned", "added": sorted(tp.partition for tp in assigned),
                  "partitions": sorted(owned)})

        def on_partitions_lost(self, lost):
            gone = {tp.partition for tp in lost}
            owned.difference_update(gone)
            emit({"event": "lost", "partitions": sorted(gone)})

    c.subscribe([TOPIC], listener=Listener())
    pending = {}

    def commit():
        if not pending:
            return
        offs = {TopicPartition(TOPIC, p): OffsetAndMetadata(o, "", -1) for p, o in pending.items()}
        try:
            c.commit(offsets=offs)
            emit({"event": "committed", "offsets": sorted([p, o] for p, o in pending.items())})
            pending.clear()
        except Exception as e:  # noqa: BLE001 - reported, the test judges
            sys.stderr.write("commit failed: %r\n" % e)
            emit({"event": "commit-failed", "error": repr(e)})

    while not stop.is_set():
        for tp, msgs in c.poll(timeout_ms=200).items():
            for m in msgs:
                emit(record_event(m.partition, m.offset, m.key, m.value))
                pending[m.partition] = m.offset + 1
        commit()
    commit()
    c.close()
    emit({"event": "closed"})


{"create": create, "produce": produce, "consume": consume, "offsets": offsets,
 "group": group}[args.command]()
