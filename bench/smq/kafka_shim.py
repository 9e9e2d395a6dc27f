#!/usr/bin/env python3
"""A small Kafka TCP shim that lets Apache Kafka 4.4 Java clients talk to SeaweedFS's Go Kafka gateway.

    kafka_shim.py --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT [--rewrite-port N]...

It forwards every frame unchanged except for two things the gateway (SeaweedFS 4.53) gets wrong:

1. ApiVersions v5. Kafka 4.4 clients open every connection with ApiVersions v5 (KIP-1242); the gateway
   supports v0-v4 and answers v5 with an error body that is not a valid ApiVersions response (error code
   plus a message string), so the client dies parsing it ("Tried to allocate a collection of size
   2184558"). The shim sends such a request as v4 instead: the same body without the v5-only ClusterId
   and NodeId fields. The v4 and v5 response layouts are identical, so the answer passes through as is.

2. The advertised address. Started with -ip=H, the gateway advertises H:9093 in Metadata and
   FindCoordinator whatever its -port (GetAdvertisedAddress keeps its 9093 default once
   KAFKA_ADVERTISED_HOST is set). Clients must come back through the shim anyway (point 1), so in the
   answers to Metadata, FindCoordinator and DescribeCluster every (host string, int32 port) pair whose
   port is one of --rewrite-port becomes (host, listen port).

Everything else (Produce, Fetch, groups) is copied frame by frame. Standard library only.
"""

import argparse
import socket
import struct
import sys
import threading

API_METADATA = 3
API_FIND_COORDINATOR = 10
API_API_VERSIONS = 18
API_DESCRIBE_CLUSTER = 60
ADDRESS_APIS = (API_METADATA, API_FIND_COORDINATOR, API_DESCRIBE_CLUSTER)

HOST_CHARS = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:_[]")


def read_exact(sock, n):
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            return None
        got += k
    return buf


def read_frame(sock):
    head = read_exact(sock, 4)
    if head is None:
        return None
    (size,) = struct.unpack(">i", head)
    if size < 0 or size > 1 << 30:
        raise ValueError(f"bad frame size {size}")
    body = read_exact(sock, size)
    if body is None:
        return None
    return body


def uvarint(buf, pos):
    shift = value = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7
        if shift > 28:
            raise ValueError("varint too long")


def skip_tagged_fields(buf, pos):
    count, pos = uvarint(buf, pos)
    for _ in range(count):
        _tag, pos = uvarint(buf, pos)
        size, pos = uvarint(buf, pos)
        pos += size
    return pos


def api_versions_v5_to_v4(frame):
    """The v4 form of an ApiVersions v5 request (header v2), or None when it does not parse."""
    try:
        pos = 8  # api_key, api_version, correlation_id
        (client_id_len,) = struct.unpack_from(">h", frame, pos)
        pos += 2 + max(client_id_len, 0)
        pos = skip_tagged_fields(frame, pos)  # end of the request header
        for _ in range(2):  # ClientSoftwareName, ClientSoftwareVersion (compact strings)
            n, pos = uvarint(frame, pos)
            pos += max(n - 1, 0)
        if pos > len(frame):
            return None
        out = bytearray(frame[:pos])
        out.append(0)  # no tagged fields
        struct.pack_into(">h", out, 2, 4)
        return out
    except (IndexError, ValueError, struct.error):
        return None


def rewrite_ports(frame, old_ports, new_port):
    """Replace the port of every (host string, int32 port) pair whose port is in old_ports: the 4 bytes
    of the port right after a run of host-name characters with a matching length prefix (int16 or
    compact)."""
    new = struct.pack(">i", new_port)
    for old in old_ports:
        pat = struct.pack(">i", old)
        i = frame.find(pat, 4)
        while i >= 0:
            for hlen in range(1, min(i - 5, 255) + 1):
                if frame[i - hlen] not in HOST_CHARS:
                    break
                legacy = frame[i - hlen - 2:i - hlen] == struct.pack(">h", hlen)
                compact = frame[i - hlen - 1] == hlen + 1
                if legacy or compact:
                    frame[i:i + 4] = new
                    break
            i = frame.find(pat, i + 1)
    return frame


class Conn:
    def __init__(self, client, upstream_addr, listen_port, old_ports):
        self.client = client
        self.server = socket.create_connection(upstream_addr)
        for s in (self.client, self.server):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.listen_port = listen_port
        self.old_ports = old_ports
        self.pending = {}  # correlation id -> api key, for the answers to rewrite
        self.lock = threading.Lock()

    def close(self):
        for s in (self.client, self.server):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def upstream(self):
        try:
            while True:
                frame = read_frame(self.client)
                if frame is None:
                    break
                api_key, api_version, corr = struct.unpack_from(">hhi", frame, 0)
                if api_key == API_API_VERSIONS and api_version >= 5:
                    frame = api_versions_v5_to_v4(frame) or frame
                if api_key in ADDRESS_APIS:
                    with self.lock:
                        self.pending[corr] = api_key
                self.server.sendall(struct.pack(">i", len(frame)) + frame)
        except (OSError, ValueError, struct.error):
            pass
        finally:
            self.close()

    def downstream(self):
        try:
            while True:
                frame = read_frame(self.server)
                if frame is None:
                    break
                (corr,) = struct.unpack_from(">i", frame, 0)
                with self.lock:
                    api_key = self.pending.pop(corr, None)
                if api_key is not None:
                    frame = rewrite_ports(frame, self.old_ports, self.listen_port)
                self.client.sendall(struct.pack(">i", len(frame)) + frame)
        except (OSError, ValueError, struct.error):
            pass
        finally:
            self.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", required=True, help="host:port to accept clients on")
    ap.add_argument("--upstream", required=True, help="host:port of the Kafka gateway")
    ap.add_argument("--rewrite-port", type=int, action="append", default=[],
                    help="advertised port to replace by the listen port (repeatable)")
    args = ap.parse_args()
    lhost, lport = args.listen.rsplit(":", 1)
    uhost, uport = args.upstream.rsplit(":", 1)
    upstream = (uhost, int(uport))
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((lhost, int(lport)))
    ls.listen(64)
    print(f"kafka_shim: {args.listen} -> {args.upstream}, rewriting ports {args.rewrite_port}",
          file=sys.stderr, flush=True)
    while True:
        client, _ = ls.accept()
        try:
            conn = Conn(client, upstream, int(lport), args.rewrite_port)
        except OSError as e:
            print(f"kafka_shim: upstream {args.upstream}: {e}", file=sys.stderr, flush=True)
            client.close()
            continue
        threading.Thread(target=conn.upstream, daemon=True).start()
        threading.Thread(target=conn.downstream, daemon=True).start()


if __name__ == "__main__":
    main()
