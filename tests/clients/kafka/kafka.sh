#!/usr/bin/env bash
# Runs an Apache Kafka 4.4 command-line tool from the jars tests/install.sh put in $KELP_CACHE/kafka/libs
# (the same main classes as bin/kafka-*.sh of the Kafka distribution).
#
#   tests/clients/kafka/kafka.sh topics --bootstrap-server 127.0.0.1:9092 --list
#   tests/clients/kafka/kafka.sh console-producer | console-consumer | consumer-groups | get-offsets |
#                                configs | delete-records ...
set -euo pipefail
LIBS="${KELP_CACHE:-$HOME/.cache/kelp-tests}/kafka/libs"
HERE="$(cd "$(dirname "$0")" && pwd)"
tool="${1:-}"; shift || true
case "$tool" in
  topics) main=org.apache.kafka.tools.TopicCommand ;;
  console-producer) main=org.apache.kafka.tools.ConsoleProducer ;;
  console-consumer) main=org.apache.kafka.tools.consumer.ConsoleConsumer ;;
  consumer-groups) main=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
  get-offsets) main=org.apache.kafka.tools.GetOffsetShell ;;
  configs) main=org.apache.kafka.tools.ConfigCommand ;;
  delete-records) main=org.apache.kafka.tools.DeleteRecordsCommand ;;
  *) echo "usage: $0 topics|console-producer|console-consumer|consumer-groups|get-offsets|configs|delete-records ARGS..." >&2; exit 2 ;;
esac
if [ ! -d "$LIBS" ]; then echo "$LIBS missing: run tests/install.sh kafka" >&2; exit 3; fi
exec java -Xms64m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
  -Dlog4j2.configurationFile="$HERE/log4j2-tools.yaml" -cp "$LIBS/*" "$main" "$@"
