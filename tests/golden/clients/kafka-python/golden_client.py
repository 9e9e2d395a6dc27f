#!/usr/bin/env python3
"""Golden-bytes client: kafka-python 3.x (pure Python).

usage: golden_client.py BOOTSTRAP
"""
import sys
import time

import kafka
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, OffsetSpec

BOOT = sys.argv[1]
TOPIC = "golden-kafka-python"
TX_TOPIC = TOPIC + "-tx"
GROUP = TOPIC + "-group"


def log(*a):
    print("[golden]", *a, flush=True)


log("kafka-python", kafka.__version__)
admin = KafkaAdminClient(bootstrap_servers=BOOT, client_id="golden-kpy-admin")

# --- create topics + metadata ---
admin.create_topics({TOPIC: {"num_partitions": 3, "replication_factor": 1},
                     TX_TOPIC: {"num_partitions": 3, "replication_factor": 1}},
                    timeout_ms=30000, wait_for_metadata=True)
log("created", TOPIC, TX_TOPIC)
log("topics", sorted(t for t in admin.list_topics() if t.startswith("golden")))
log("describe", admin.describe_topics([TOPIC]))
log("cluster", admin.describe_cluster())
log("configs", admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, TOPIC)]))

# --- produce: one producer per codec (kafka-python 3 defaults: idempotent, acks=all) ---
t0 = int(time.time() * 1000)
total = 0
for codec in [None, "gzip", "snappy", "lz4", "zstd"]:
    name = codec or "none"
    p = KafkaProducer(bootstrap_servers=BOOT, client_id="golden-kpy-producer-" + name,
                      compression_type=codec, linger_ms=50)
    futs = []
    for part in range(3):
        for i in range(10):
            headers = [("codec", name.encode()), ("idx", str(i).encode())]
            if i == 0:
                headers.append(("empty-header", b""))  # kafka-python rejects None header values
            key = None if i == 1 else ("key-%d-%d" % (part, i)).encode()
            val = None if i == 2 else ("value-%s-%d-%d-hello kelp hello kelp" % (name, part, i)).encode()
            futs.append(p.send(TOPIC, value=val, key=key, headers=headers, partition=part,
                               timestamp_ms=t0 + total))
            total += 1
    p.flush(30)
    for f in futs:
        f.get(timeout=30)
    p.close()
    log("produced codec", name)

p = KafkaProducer(bootstrap_servers=BOOT, client_id="golden-kpy-partitioner")
for i in range(6):
    p.send(TOPIC, key=b"k%d" % i, value=b"v%d" % i).get(timeout=30)
    total += 1
p.close()
log("produced total", total)

# --- transactions ---
tp = KafkaProducer(bootstrap_servers=BOOT, client_id="golden-kpy-txn", transactional_id="golden-kpy-txn-1")
tp.init_transactions()
tp.begin_transaction()
for i in range(3):
    tp.send(TX_TOPIC, key=b"tk%d" % i, value=b"committed-%d" % i, partition=i)
tp.commit_transaction()
tp.begin_transaction()
tp.send(TX_TOPIC, key=b"tk-abort", value=b"aborted", partition=0)
tp.flush()
tp.abort_transaction()
tp.close()
log("transactions done")

# --- list offsets via admin ---
parts = [TopicPartition(TOPIC, i) for i in range(3)]
for name, spec in [("earliest", OffsetSpec.EARLIEST), ("latest", OffsetSpec.LATEST),
                   ("bytime", t0 + 20), ("maxts", OffsetSpec.MAX_TIMESTAMP)]:
    res = admin.list_partition_offsets({tp_: spec for tp_ in parts})
    log(name, sorted((k.partition, v.offset) for k, v in res.items()))

# --- group consumer ---
c = KafkaConsumer(bootstrap_servers=BOOT, client_id="golden-kpy-consumer", group_id=GROUP,
                  auto_offset_reset="earliest", enable_auto_commit=False,
                  isolation_level="read_committed")
c.subscribe([TOPIC, TX_TOPIC])
got = 0
want = total + 3
deadline = time.time() + 60
while got < want and time.time() < deadline:
    recs = c.poll(timeout_ms=500)
    n = sum(len(v) for v in recs.values())
    got += n
    if n:
        c.commit()
log("group consumed", got, "of", want)
log("offsets_for_times", c.offsets_for_times({tp_: t0 + 20 for tp_ in parts}))
log("beginning", c.beginning_offsets(parts), "end", c.end_offsets(parts))
log("groups", admin.list_groups())
log("describe group", admin.describe_groups([GROUP]))
log("group offsets", admin.list_group_offsets({GROUP: None}))
c.close()
if got < want:
    raise SystemExit("consumed only %d of %d" % (got, want))

# --- consumer without group: assign + seek to beginning ---
c = KafkaConsumer(bootstrap_servers=BOOT, client_id="golden-kpy-assign", enable_auto_commit=False)
c.assign(parts)
c.seek_to_beginning(*parts)
n = 0
deadline = time.time() + 30
while n < total and time.time() < deadline:
    n += sum(len(v) for v in c.poll(timeout_ms=500).values())
log("assigned consumer read", n)
c.close()

# --- cleanup ---
admin.delete_groups([GROUP])
admin.delete_topics([TOPIC, TX_TOPIC], timeout_ms=30000)
admin.close()
log("deleted topics and group")
