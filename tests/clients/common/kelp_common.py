"""Shared by the Python clients (librdkafka/client.py, kafka-python/client.py): argument parsing,
the record file reader and the JSON line writer of the contract in tests/README.md."""
import argparse
import base64
import json
import sys
import threading

# topic config of `create`: the record set has a 1 MiB value, more than Kafka's default
# max.message.bytes (1048588); the clients' own limits are 4 MiB
TOPIC_CONFIG = {"max.message.bytes": "2097152"}


def parse_args():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--input")
    ap.add_argument("--times", default="")
    ap.add_argument("--group")
    ap.add_argument("--assignor")
    ap.add_argument("command", choices=["create", "produce", "consume", "offsets", "group"])
    a = ap.parse_args()
    a.times = [int(t) for t in a.times.split(",") if t]
    return a


def _bytes(field):
    return None if field == "-" else base64.b64decode(field)


def read_groups(path):
    """The record file as [(codec, [record, ...]), ...], one entry per run of lines with the same codec."""
    groups = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            f_ = line.split("\t")
            rec = {"partition": int(f_[1]), "timestamp": int(f_[2]), "key": _bytes(f_[3]),
                   "value": _bytes(f_[4]),
                   "headers": [(base64.b64decode(f_[k]).decode(), _bytes(f_[k + 1]))
                               for k in range(5, len(f_) - 1, 2)]}
            if not groups or groups[-1][0] != f_[0]:
                groups.append((f_[0], []))
            groups[-1][1].append(rec)
    return groups


def _b64(b):
    return None if b is None else base64.b64encode(b).decode()


def record_json(partition, offset, timestamp, key, value, headers):
    return {"partition": partition, "offset": offset, "timestamp": timestamp, "key": _b64(key),
            "value": _b64(value), "headers": [[k, _b64(v)] for k, v in headers]}


_emit_lock = threading.Lock()


def emit(obj):
    with _emit_lock:
        sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
        sys.stdout.flush()


def stdin_closed():
    """An Event set when stdin reaches EOF or reads a `close` line (how `group` is told to stop)."""
    ev = threading.Event()

    def watch():
        for line in sys.stdin:
            if line.strip() == "close":
                break
        ev.set()

    threading.Thread(target=watch, daemon=True).start()
    return ev


def record_event(partition, offset, key, value):
    """A `group` record line: key and value as text (the group tests send text)."""
    text = lambda b: None if b is None else b.decode("utf-8", "replace")  # noqa: E731
    return {"event": "record", "partition": partition, "offset": offset, "key": text(key),
            "value": text(value)}
