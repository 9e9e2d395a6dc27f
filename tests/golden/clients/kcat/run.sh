#!/usr/bin/env bash
# Golden-bytes run for kcat (Debian package, bundles its librdkafka).
# usage: run.sh BOOTSTRAP PYTHON
# kcat has no admin API: topic create/delete is done with confluent-kafka while the
# capture proxy is paused ($GOLDEN_PAUSE_FILE exists), so it is not recorded.
set -euo pipefail
BOOT="$1"; PY="$2"
T=golden-kcat
G=golden-kcat-group
admin() {
  touch "$GOLDEN_PAUSE_FILE"
  "$PY" - "$BOOT" "$1" "$T" <<'PYEOF'
import sys
from confluent_kafka.admin import AdminClient, NewTopic
boot, op, t = sys.argv[1:4]
a = AdminClient({"bootstrap.servers": boot})
fs = a.create_topics([NewTopic(t, 3, 1)]) if op == "create" else a.delete_topics([t])
for f in fs.values():
    f.result(timeout=30)
print("[golden] admin", op, t)
PYEOF
  sleep 0.5
  rm -f "$GOLDEN_PAUSE_FILE"
}
set -x
admin create
sleep 2
kcat -b "$BOOT" -L
kcat -b "$BOOT" -L -t "$T" -J
# produce: keyed with headers, per codec (one kcat process = one batch per partition)
for z in none gzip snappy lz4 zstd; do
  zopt=(); [ "$z" != none ] && zopt=(-z "$z")
  for p in 0 1 2; do
    seq 1 10 | sed "s/^/key-$p-/;s/\$/:value-$z-$p hello kelp hello kelp/" \
      | kcat -b "$BOOT" -P -t "$T" -p "$p" -K: -H "codec=$z" -H "part=$p" "${zopt[@]}" -X linger.ms=50
  done
done
# null key (no -K), null value (-Z with empty line), idempotent producer
printf 'no-key-1\nno-key-2\n' | kcat -b "$BOOT" -P -t "$T" -p 0
printf 'null-value-key:\n' | kcat -b "$BOOT" -P -t "$T" -p 1 -K: -Z
printf 'idem-1:v1\nidem-2:v2\nidem-3:v3\n' | kcat -b "$BOOT" -P -t "$T" -K: -X enable.idempotence=true -z lz4
# query offsets: by time, earliest (-2), latest (-1)
kcat -b "$BOOT" -Q -t "$T:0:$(( $(date +%s) * 1000 - 60000 ))" -t "$T:1:-2" -t "$T:2:-1"
# simple consumer from the beginning
kcat -b "$BOOT" -C -t "$T" -o beginning -e -f '%p %o %k %s %h\n'
# balanced consumer group (commits offsets), exits at end of partitions
kcat -b "$BOOT" -G "$G" -o beginning -e -X auto.offset.reset=earliest -X enable.auto.commit=true \
     -X auto.commit.interval.ms=100 -f '%p %o %k\n' "$T"
set +x
admin delete
