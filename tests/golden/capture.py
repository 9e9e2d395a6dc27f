#!/usr/bin/env python3
"""Capturing TCP proxy for Kafka golden-byte fixtures.

Listens on 127.0.0.1:19092 (the broker's advertised listener), forwards every
connection to the real broker on 127.0.0.1:9093, splits both directions into
Kafka frames (4-byte big-endian size prefix), pairs each request with its
response by correlation id, and writes per pair:

    <out>/<NNNN>-<api_name>-v<version>.req   request header + body  (no size prefix)
    <out>/<NNNN>-<api_name>-v<version>.resp  response header + body (no size prefix)

NNNN is a run-global sequence number in order of request arrival at the proxy.
A request that never gets a response (produce with acks=0, connection closed
early) is written as .req only and has resp_len -1 in the manifest.

<out>/manifest.tsv has one line per request:
    seq  api_key  api_version  correlation_id  req_len  resp_len  conn  api_name
(conn = proxy-local connection number, in accept order).

Bytes are forwarded unchanged and immediately; parsing happens on a copy.

Usage: capture.py OUT_DIR [--listen HOST:PORT] [--upstream HOST:PORT] [--pause-file PATH]

With --pause-file, connections accepted while PATH exists are forwarded but not
recorded (used for test setup/teardown done with another client, e.g. for kcat,
which has no admin API).
Stops cleanly (writes the manifest) on SIGINT/SIGTERM.
"""
import argparse
import asyncio
import os
import signal
import struct
import sys

# Kafka api keys (from org.apache.kafka.common.protocol.ApiKeys, kafka-clients 4.4.0)
API_NAMES = {
    0: "produce", 1: "fetch", 2: "list_offsets", 3: "metadata",
    4: "leader_and_isr", 5: "stop_replica", 6: "update_metadata",
    7: "controlled_shutdown", 8: "offset_commit", 9: "offset_fetch",
    10: "find_coordinator", 11: "join_group", 12: "heartbeat",
    13: "leave_group", 14: "sync_group", 15: "describe_groups",
    16: "list_groups", 17: "sasl_handshake", 18: "api_versions",
    19: "create_topics", 20: "delete_topics", 21: "delete_records",
    22: "init_producer_id", 23: "offset_for_leader_epoch",
    24: "add_partitions_to_txn", 25: "add_offsets_to_txn", 26: "end_txn",
    27: "write_txn_markers", 28: "txn_offset_commit", 29: "describe_acls",
    30: "create_acls", 31: "delete_acls", 32: "describe_configs",
    33: "alter_configs", 34: "alter_replica_log_dirs",
    35: "describe_log_dirs", 36: "sasl_authenticate",
    37: "create_partitions", 38: "create_delegation_token",
    39: "renew_delegation_token", 40: "expire_delegation_token",
    41: "describe_delegation_token", 42: "delete_groups",
    43: "elect_leaders", 44: "incremental_alter_configs",
    45: "alter_partition_reassignments",
    46: "list_partition_reassignments", 47: "offset_delete",
    48: "describe_client_quotas", 49: "alter_client_quotas",
    50: "describe_user_scram_credentials",
    51: "alter_user_scram_credentials", 52: "vote",
    53: "begin_quorum_epoch", 54: "end_quorum_epoch",
    55: "describe_quorum", 56: "alter_partition", 57: "update_features",
    58: "envelope", 59: "fetch_snapshot", 60: "describe_cluster",
    61: "describe_producers", 62: "broker_registration",
    63: "broker_heartbeat", 64: "unregister_broker",
    65: "describe_transactions", 66: "list_transactions",
    67: "allocate_producer_ids", 68: "consumer_group_heartbeat",
    69: "consumer_group_describe", 70: "controller_registration",
    71: "get_telemetry_subscriptions", 72: "push_telemetry",
    73: "assign_replicas_to_dirs", 74: "list_config_resources",
    75: "describe_topic_partitions", 76: "share_group_heartbeat",
    77: "share_group_describe", 78: "share_fetch", 79: "share_acknowledge",
    80: "add_raft_voter", 81: "remove_raft_voter", 82: "update_raft_voter",
    83: "initialize_share_group_state", 84: "read_share_group_state",
    85: "write_share_group_state", 86: "delete_share_group_state",
    87: "read_share_group_state_summary", 88: "streams_group_heartbeat",
    89: "streams_group_describe", 90: "describe_share_group_offsets",
    91: "alter_share_group_offsets", 92: "delete_share_group_offsets",
    93: "streams_group_topology_description_update",
    94: "unregister_controller",
}

MAX_FRAME = 64 * 1024 * 1024


def api_name(key):
    return API_NAMES.get(key, "api_%d" % key)


class Recorder:
    def __init__(self, out_dir):
        self.out = out_dir
        os.makedirs(out_dir, exist_ok=True)
        self.seq = 0
        self.conn_count = 0
        self.rows = {}  # seq -> [seq, key, ver, corr, req_len, resp_len, conn, name]

    def next_conn(self):
        self.conn_count += 1
        return self.conn_count

    def base(self, seq, key, ver):
        return os.path.join(self.out, "%04d-%s-v%d" % (seq, api_name(key), ver))

    def request(self, conn, frame):
        key, ver, corr = struct.unpack(">hhi", frame[:8])
        self.seq += 1
        seq = self.seq
        with open(self.base(seq, key, ver) + ".req", "wb") as f:
            f.write(frame)
        self.rows[seq] = [seq, key, ver, corr, len(frame), -1, conn, api_name(key)]
        return seq, key, ver, corr

    def response(self, seq, key, ver, frame):
        with open(self.base(seq, key, ver) + ".resp", "wb") as f:
            f.write(frame)
        self.rows[seq][5] = len(frame)

    def write_manifest(self):
        path = os.path.join(self.out, "manifest.tsv")
        with open(path, "w") as f:
            f.write("seq\tapi_key\tapi_version\tcorrelation_id\treq_len\tresp_len\tconn\tapi_name\n")
            for seq in sorted(self.rows):
                f.write("\t".join(str(x) for x in self.rows[seq]) + "\n")
        return path


class FrameSplitter:
    def __init__(self):
        self.buf = bytearray()

    def feed(self, data):
        self.buf += data
        frames = []
        while len(self.buf) >= 4:
            (size,) = struct.unpack(">i", self.buf[:4])
            if size < 0 or size > MAX_FRAME:
                raise ValueError("bad frame size %d" % size)
            if len(self.buf) < 4 + size:
                break
            frames.append(bytes(self.buf[4:4 + size]))
            del self.buf[:4 + size]
        return frames


async def pump(reader, writer, on_frame, label):
    splitter = FrameSplitter()
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
            for fr in splitter.feed(data):
                on_frame(fr)
    except (ConnectionResetError, BrokenPipeError):
        pass
    except ValueError as e:
        print("capture: %s: %s" % (label, e), file=sys.stderr)
    finally:
        try:
            writer.close()
        except Exception:
            pass


def make_handler(rec, up_host, up_port, pause_file):
    async def handle(c_reader, c_writer):
        record = not (pause_file and os.path.exists(pause_file))
        conn = rec.next_conn() if record else 0
        try:
            b_reader, b_writer = await asyncio.open_connection(up_host, up_port)
        except OSError as e:
            print("capture: conn %d: upstream connect failed: %s" % (conn, e), file=sys.stderr)
            c_writer.close()
            return
        pending = {}  # correlation id -> (seq, key, ver)

        def on_req(fr):
            if not record:
                return
            if len(fr) < 8:
                print("capture: conn %d: short request frame" % conn, file=sys.stderr)
                return
            seq, key, ver, corr = rec.request(conn, fr)
            pending[corr] = (seq, key, ver)

        def on_resp(fr):
            if not record:
                return
            if len(fr) < 4:
                print("capture: conn %d: short response frame" % conn, file=sys.stderr)
                return
            (corr,) = struct.unpack(">i", fr[:4])
            p = pending.pop(corr, None)
            if p is None:
                print("capture: conn %d: response for unknown correlation id %d" % (conn, corr),
                      file=sys.stderr)
                return
            rec.response(p[0], p[1], p[2], fr)

        try:
            await asyncio.gather(
                pump(c_reader, b_writer, on_req, "conn %d client->broker" % conn),
                pump(b_reader, c_writer, on_resp, "conn %d broker->client" % conn),
            )
        except asyncio.CancelledError:
            pass  # proxy shutting down
        finally:
            for w in (c_writer, b_writer):
                try:
                    w.close()
                except Exception:
                    pass

    return handle


def hostport(s):
    h, p = s.rsplit(":", 1)
    return h, int(p)


async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--listen", default="127.0.0.1:19092")
    ap.add_argument("--upstream", default="127.0.0.1:9093")
    ap.add_argument("--pause-file", default=None)
    a = ap.parse_args()
    rec = Recorder(a.out)
    lh, lp = hostport(a.listen)
    uh, up = hostport(a.upstream)
    server = await asyncio.start_server(make_handler(rec, uh, up, a.pause_file), lh, lp, reuse_address=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print("capture: %s -> %s, writing %s" % (a.listen, a.upstream, a.out), flush=True)
    await stop.wait()
    server.close()
    for t in asyncio.all_tasks():
        if t is not asyncio.current_task():
            t.cancel()
    await asyncio.sleep(0.2)
    path = rec.write_manifest()
    print("capture: %d requests, %d connections, manifest %s" % (rec.seq, rec.conn_count, path),
          flush=True)


if __name__ == "__main__":
    asyncio.run(main())
