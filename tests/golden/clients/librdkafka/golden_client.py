#!/usr/bin/env python3
"""Golden-bytes client: librdkafka via confluent-kafka (Python).

usage: golden_client.py BOOTSTRAP [classic|consumer]
The second argument selects group.protocol for the group consumer (default classic).
"""
import sys
import time

from confluent_kafka import (Consumer, KafkaException, OFFSET_BEGINNING, Producer,
                             TopicPartition, ConsumerGroupTopicPartitions)
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec, ConfigResource, ResourceType

BOOT = sys.argv[1]
PROTO = sys.argv[2] if len(sys.argv) > 2 else "classic"
SUFFIX = "" if PROTO == "classic" else "-848"
TOPIC = "golden-librdkafka" + SUFFIX
TX_TOPIC = TOPIC + "-tx"
GROUP = TOPIC + "-group"


def log(*a):
    print("[golden]", *a, flush=True)


def wait(futs):
    return {k: f.result(timeout=30) for k, f in futs.items()}


admin = AdminClient({"bootstrap.servers": BOOT, "client.id": "golden-rdkafka-admin"})

# --- create topics + metadata ---
wait(admin.create_topics([NewTopic(TOPIC, 3, 1), NewTopic(TX_TOPIC, 3, 1)], operation_timeout=30))
log("created", TOPIC, TX_TOPIC)
md = admin.list_topics(timeout=10)
log("metadata topics", sorted(t for t in md.topics if t.startswith("golden")))
log("cluster", admin.describe_cluster().result(timeout=10).cluster_id)
cr = ConfigResource(ResourceType.TOPIC, TOPIC)
log("configs", len(list(wait(admin.describe_configs([cr])).values())[0]))

# --- produce: one producer per codec (librdkafka defaults: acks=all, not idempotent),
#     then an idempotent one and a transactional one ---
t0 = int(time.time() * 1000)
total = 0
delivered = []


def dr(err, msg):
    if err:
        raise KafkaException(err)
    delivered.append(msg.offset())


def produce_batch(p, codec):
    global total
    for part in range(3):
        for i in range(10):
            headers = [("codec", codec.encode()), ("idx", str(i).encode())]
            if i == 0:
                headers.append(("null-header", None))
            key = None if i == 1 else ("key-%d-%d" % (part, i)).encode()
            val = None if i == 2 else ("value-%s-%d-%d-hello kelp hello kelp" % (codec, part, i)).encode()
            p.produce(TOPIC, value=val, key=key, partition=part, headers=headers, timestamp=t0 + total,
                      on_delivery=dr)
            total += 1
    assert p.flush(30) == 0


for codec in ["none", "gzip", "snappy", "lz4", "zstd"]:
    p = Producer({"bootstrap.servers": BOOT, "client.id": "golden-rdkafka-producer-" + codec,
                  "compression.type": codec, "linger.ms": 50})
    produce_batch(p, codec)
    log("produced codec", codec)
    del p

p = Producer({"bootstrap.servers": BOOT, "client.id": "golden-rdkafka-idempotent",
              "enable.idempotence": True, "compression.type": "lz4", "linger.ms": 50})
produce_batch(p, "lz4")
# keyed records, partitioner picks partition
for i in range(6):
    p.produce(TOPIC, key=b"k%d" % i, value=b"v%d" % i, on_delivery=dr)
    total += 1
assert p.flush(30) == 0
del p
log("produced total", total, "delivered", len(delivered))

tp = Producer({"bootstrap.servers": BOOT, "client.id": "golden-rdkafka-txn",
               "transactional.id": "golden-rdkafka-txn-1" + SUFFIX})
tp.init_transactions(30)
tp.begin_transaction()
for i in range(3):
    tp.produce(TX_TOPIC, key=b"tk%d" % i, value=b"committed-%d" % i, partition=i)
tp.commit_transaction(30)
tp.begin_transaction()
tp.produce(TX_TOPIC, key=b"tk-abort", value=b"aborted", partition=0)
tp.flush(30)
tp.abort_transaction(30)
del tp
log("transactions done")

# --- list offsets via admin: earliest / latest / by time / max timestamp ---
parts = [TopicPartition(TOPIC, i) for i in range(3)]
for name, spec in [("earliest", OffsetSpec.earliest()), ("latest", OffsetSpec.latest()),
                   ("bytime", OffsetSpec.for_timestamp(t0 + 20)), ("maxts", OffsetSpec.max_timestamp())]:
    res = wait(admin.list_offsets({tp_: spec for tp_ in parts}))
    log(name, sorted((k.partition, v.offset) for k, v in res.items()))

# --- group consumer: subscribe, consume all from beginning, commit ---
conf = {"bootstrap.servers": BOOT, "client.id": "golden-rdkafka-consumer", "group.id": GROUP,
        "auto.offset.reset": "earliest", "enable.auto.commit": False,
        "isolation.level": "read_committed", "group.protocol": PROTO}
c = Consumer(conf)
c.subscribe([TOPIC, TX_TOPIC])
got = 0
want = total + 3
deadline = time.time() + 60
while got < want and time.time() < deadline:
    msgs = c.consume(100, timeout=0.5)
    for m in msgs:
        if m.error():
            raise KafkaException(m.error())
    got += len(msgs)
    if msgs:
        c.commit(asynchronous=False)
log("group consumed", got, "of", want)
log("committed", [(t.topic, t.partition, t.offset) for t in c.committed(c.assignment(), timeout=10)])
log("offsets_for_times", [(t.partition, t.offset) for t in
                          c.offsets_for_times([TopicPartition(TOPIC, i, t0 + 20) for i in range(3)], timeout=10)])
log("watermarks", [c.get_watermark_offsets(TopicPartition(TOPIC, i), timeout=10) for i in range(3)])

# --- list/describe groups while the member is alive ---
lg = admin.list_consumer_groups().result(timeout=10)
log("groups", [g.group_id for g in lg.valid])
dg = wait(admin.describe_consumer_groups([GROUP]))
log("describe group", {k: (str(v.state), len(v.members)) for k, v in dg.items()})
og = wait(admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(GROUP)]))
log("group offsets", {k: [(t.topic, t.partition, t.offset) for t in v.topic_partitions] for k, v in og.items()})
c.close()
if got < want:
    raise SystemExit("consumed only %d of %d" % (got, want))

# --- consumer without group: assign from the beginning ---
c = Consumer({"bootstrap.servers": BOOT, "client.id": "golden-rdkafka-assign",
              "group.id": "unused-" + GROUP, "enable.auto.commit": False})
c.assign([TopicPartition(TOPIC, i, OFFSET_BEGINNING) for i in range(3)])
n = 0
deadline = time.time() + 30
while n < total and time.time() < deadline:
    n += len(c.consume(100, timeout=0.5))
log("assigned consumer read", n)
c.close()

# --- delete group + topics ---
wait(admin.delete_consumer_groups([GROUP]))
wait(admin.delete_topics([TOPIC, TX_TOPIC], operation_timeout=30))
log("deleted topics and group")
