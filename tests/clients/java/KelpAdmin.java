// Admin session for Kelp's end-to-end tests: Apache Kafka's Java AdminClient (kafka-clients 4.x), plus
// a producer and a group-less consumer, driven one command per stdin line.
//
//   java -cp "$KELP_CACHE/java/libs/*" KelpAdmin.java --bootstrap HOST:PORT
//
// Each command line gets exactly one JSON line on stdout: its result, or, when the broker (or the
// client) refused it, {"error":"KAFKA_ERROR_NAME","exception":"Class","message":"..."}; the session
// goes on after an error. Logs go to stderr. The session ends at EOF on stdin.
//
//   create TOPIC PARTITIONS [NAME=VALUE ...]   createTopics (replication factor 1, topic configs)
//                                              -> {"created":T}
//   describe-topic TOPIC                       describeTopics (DescribeTopicPartitions, or Metadata)
//                                              -> {"topic":T,"partitions":[{"partition":P,"leader":ID},...]}
//   metadata TOPIC                             a fresh consumer's partitionsFor (a Metadata request)
//                                              -> {"topic":T,"partitions":[{"partition":P,"leader":ID},...]}
//   list-topics                                listTopics -> {"topics":[T,...]}
//   delete-topics TOPIC                        deleteTopics -> {"deleted":T}
//   describe-configs TOPIC                     describeConfigs of the topic
//                                              -> {"configs":[{"name":N,"value":V|null,"source":S,
//                                                  "read_only":B,"sensitive":B},...]}
//   alter-configs TOPIC OP:NAME[=VALUE] ...    incrementalAlterConfigs, OP = set | delete
//                                              -> {"altered":T}
//   create-partitions TOPIC N                  createPartitions(increaseTo N) -> {"partitions":N}
//   delete-records TOPIC PARTITION OFFSET      deleteRecords(beforeOffset OFFSET) -> {"low_watermark":W}
//   list-offsets TOPIC SPEC                    listOffsets of every partition; SPEC = earliest | latest |
//                                              max-timestamp | a timestamp in ms
//                                              -> {"offsets":[{"partition":P,"offset":O,"timestamp":T},...]}
//   describe-cluster                           describeCluster
//                                              -> {"cluster_id":C,"controller":ID|null,
//                                                  "nodes":[{"id":ID,"host":H,"port":P},...]}
//   produce TOPIC PARTITION CODEC TS,TS,...    one producer, one batch: a record per timestamp, key null,
//                                              value "v<ts>" -> {"offsets":[O,...]}
//   fetch TOPIC PARTITION OFFSET               consumer (no group, auto.offset.reset=none) assigned to the
//                                              partition at OFFSET, reads up to the high watermark
//                                              -> {"records":[{"offset":O,"timestamp":T,"value":"..."},...]}
//   describe-group GROUP                       describeConsumerGroups -> {"group":G,"state":S,"assignor":A,
//                                                  "members":[{"member_id":M,"instance_id":I|null,
//                                                  "client_id":C,"partitions":[P,...]},...]}
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetOutOfRangeException;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.protocol.Errors;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class KelpAdmin {
    static final long WAIT_S = 30;
    static String bootstrap;
    static Admin admin;

    static String q(String s) {
        if (s == null) return "null";
        StringBuilder sb = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') sb.append('\\').append(c);
            else if (c < 0x20) sb.append(String.format("\\u%04x", (int) c));
            else sb.append(c);
        }
        return sb.append('"').toString();
    }

    static Properties props(String clientId) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("client.id", clientId);
        p.put("request.timeout.ms", "20000");
        p.put("default.api.timeout.ms", "30000");
        return p;
    }

    static <T> T get(Future<T> f) throws Exception {
        return f.get(WAIT_S, TimeUnit.SECONDS);
    }

    public static void main(String[] args) throws Exception {
        for (int i = 0; i + 1 < args.length; i += 2) if (args[i].equals("--bootstrap")) bootstrap = args[i + 1];
        if (bootstrap == null) {
            System.err.println("usage: KelpAdmin --bootstrap HOST:PORT  (commands on stdin)");
            System.exit(2);
        }
        admin = Admin.create(props("kelp-e2e-java-admin"));
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            line = line.trim();
            if (line.isEmpty()) continue;
            String out;
            try {
                out = run(line.split("\\s+"));
            } catch (Throwable e) {
                out = error(e);
            }
            System.out.println(out);
            System.out.flush();
        }
        admin.close(Duration.ofSeconds(5));
    }

    /** The Kafka error a refusal stands for; the client's own exceptions by their meaning. */
    static String error(Throwable e) {
        Throwable c = e;
        while ((c instanceof ExecutionException || c instanceof org.apache.kafka.common.KafkaException
                && !(c instanceof org.apache.kafka.common.errors.ApiException)
                && !(c instanceof OffsetOutOfRangeException)) && c.getCause() != null)
            c = c.getCause();
        String name;
        if (c instanceof OffsetOutOfRangeException) name = "OFFSET_OUT_OF_RANGE";
        else if (c instanceof java.util.concurrent.TimeoutException) name = "CLIENT_TIMEOUT";
        else name = Errors.forException(c).name();
        System.err.println("command failed: " + e);
        return "{\"error\":" + q(name) + ",\"exception\":" + q(c.getClass().getName()) + ",\"message\":"
                + q(String.valueOf(c.getMessage())) + "}";
    }

    static String run(String[] a) throws Exception {
        switch (a[0]) {
            case "create": {
                Map<String, String> cfg = new HashMap<>();
                for (int i = 3; i < a.length; i++) {
                    String[] kv = a[i].split("=", 2);
                    cfg.put(kv[0], kv[1]);
                }
                NewTopic t = new NewTopic(a[1], Integer.parseInt(a[2]), (short) 1).configs(cfg);
                get(admin.createTopics(List.of(t)).all());
                return "{\"created\":" + q(a[1]) + "}";
            }
            case "describe-topic": {
                TopicDescription d = get(admin.describeTopics(List.of(a[1])).allTopicNames()).get(a[1]);
                StringJoiner ps = new StringJoiner(",", "[", "]");
                for (var p : d.partitions())
                    ps.add("{\"partition\":" + p.partition() + ",\"leader\":" + (p.leader() == null ? "null" : p.leader().id()) + "}");
                return "{\"topic\":" + q(d.name()) + ",\"partitions\":" + ps + "}";
            }
            case "metadata": {
                try (var c = new KafkaConsumer<>(props("kelp-e2e-java-admin-metadata"), new ByteArrayDeserializer(),
                        new ByteArrayDeserializer())) {
                    StringJoiner ps = new StringJoiner(",", "[", "]");
                    for (var p : c.partitionsFor(a[1], Duration.ofSeconds(WAIT_S)))
                        ps.add("{\"partition\":" + p.partition() + ",\"leader\":" + (p.leader() == null ? "null" : p.leader().id()) + "}");
                    return "{\"topic\":" + q(a[1]) + ",\"partitions\":" + ps + "}";
                }
            }
            case "list-topics": {
                StringJoiner ts = new StringJoiner(",", "[", "]");
                for (String t : new TreeSet<>(get(admin.listTopics().names()))) ts.add(q(t));
                return "{\"topics\":" + ts + "}";
            }
            case "delete-topics": {
                get(admin.deleteTopics(List.of(a[1])).all());
                return "{\"deleted\":" + q(a[1]) + "}";
            }
            case "describe-configs": {
                ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, a[1]);
                Config c = get(admin.describeConfigs(List.of(r)).all()).get(r);
                StringJoiner es = new StringJoiner(",", "[", "]");
                for (ConfigEntry e : c.entries())
                    es.add("{\"name\":" + q(e.name()) + ",\"value\":" + q(e.value()) + ",\"source\":" + q(e.source().name())
                            + ",\"read_only\":" + e.isReadOnly() + ",\"sensitive\":" + e.isSensitive() + "}");
                return "{\"configs\":" + es + "}";
            }
            case "alter-configs": {
                ConfigResource r = new ConfigResource(ConfigResource.Type.TOPIC, a[1]);
                List<AlterConfigOp> ops = new ArrayList<>();
                for (int i = 2; i < a.length; i++) {
                    String[] opArg = a[i].split(":", 2);
                    String[] kv = opArg[1].split("=", 2);
                    AlterConfigOp.OpType op = switch (opArg[0]) {
                        case "set" -> AlterConfigOp.OpType.SET;
                        case "delete" -> AlterConfigOp.OpType.DELETE;
                        default -> throw new IllegalArgumentException("op " + opArg[0]);
                    };
                    ops.add(new AlterConfigOp(new ConfigEntry(kv[0], kv.length > 1 ? kv[1] : null), op));
                }
                get(admin.incrementalAlterConfigs(Map.of(r, ops)).all());
                return "{\"altered\":" + q(a[1]) + "}";
            }
            case "create-partitions": {
                int n = Integer.parseInt(a[2]);
                get(admin.createPartitions(Map.of(a[1], NewPartitions.increaseTo(n))).all());
                return "{\"partitions\":" + n + "}";
            }
            case "delete-records": {
                TopicPartition tp = new TopicPartition(a[1], Integer.parseInt(a[2]));
                var res = admin.deleteRecords(Map.of(tp, RecordsToDelete.beforeOffset(Long.parseLong(a[3]))));
                return "{\"low_watermark\":" + get(res.lowWatermarks().get(tp)).lowWatermark() + "}";
            }
            case "list-offsets": {
                OffsetSpec spec = switch (a[2]) {
                    case "earliest" -> OffsetSpec.earliest();
                    case "latest" -> OffsetSpec.latest();
                    case "max-timestamp" -> OffsetSpec.maxTimestamp();
                    default -> OffsetSpec.forTimestamp(Long.parseLong(a[2]));
                };
                TopicDescription d = get(admin.describeTopics(List.of(a[1])).allTopicNames()).get(a[1]);
                Map<TopicPartition, OffsetSpec> req = new HashMap<>();
                for (var p : d.partitions()) req.put(new TopicPartition(a[1], p.partition()), spec);
                var res = get(admin.listOffsets(req).all());
                StringJoiner os = new StringJoiner(",", "[", "]");
                List<TopicPartition> tps = new ArrayList<>(res.keySet());
                tps.sort(Comparator.comparingInt(TopicPartition::partition));
                for (TopicPartition tp : tps)
                    os.add("{\"partition\":" + tp.partition() + ",\"offset\":" + res.get(tp).offset() + ",\"timestamp\":"
                            + res.get(tp).timestamp() + "}");
                return "{\"offsets\":" + os + "}";
            }
            case "describe-cluster": {
                DescribeClusterResult r = admin.describeCluster();
                Node ctl = get(r.controller());
                StringJoiner ns = new StringJoiner(",", "[", "]");
                for (Node n : get(r.nodes()))
                    ns.add("{\"id\":" + n.id() + ",\"host\":" + q(n.host()) + ",\"port\":" + n.port() + "}");
                return "{\"cluster_id\":" + q(get(r.clusterId())) + ",\"controller\":"
                        + (ctl == null || ctl.isEmpty() ? "null" : ctl.id()) + ",\"nodes\":" + ns + "}";
            }
            case "produce": {
                Properties pp = props("kelp-e2e-java-admin-producer");
                pp.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, a[3]);
                pp.put(ProducerConfig.LINGER_MS_CONFIG, "1000"); // flush() below closes the batch
                int partition = Integer.parseInt(a[2]);
                List<Future<RecordMetadata>> acks = new ArrayList<>();
                try (var p = new KafkaProducer<>(pp, new ByteArraySerializer(), new ByteArraySerializer())) {
                    for (String ts : a[4].split(","))
                        acks.add(p.send(new ProducerRecord<>(a[1], partition, Long.parseLong(ts), null,
                                ("v" + ts).getBytes(StandardCharsets.UTF_8))));
                    p.flush();
                    StringJoiner os = new StringJoiner(",", "[", "]");
                    for (var f : acks) os.add(Long.toString(get(f).offset()));
                    return "{\"offsets\":" + os + "}";
                }
            }
            case "fetch": {
                Properties cp = props("kelp-e2e-java-admin-consumer");
                cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
                cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none");
                TopicPartition tp = new TopicPartition(a[1], Integer.parseInt(a[2]));
                try (var c = new KafkaConsumer<>(cp, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
                    long end = c.endOffsets(List.of(tp), Duration.ofSeconds(WAIT_S)).get(tp);
                    c.assign(List.of(tp));
                    c.seek(tp, Long.parseLong(a[3]));
                    StringJoiner rs = new StringJoiner(",", "[", "]");
                    long next = Long.parseLong(a[3]);
                    long deadline = System.currentTimeMillis() + WAIT_S * 1000;
                    // at least one poll: a fetch at an offset the partition no longer has must fail
                    do {
                        if (System.currentTimeMillis() > deadline)
                            throw new java.util.concurrent.TimeoutException("fetch: at " + next + ", want " + end);
                        for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(500))) {
                            if (r.offset() >= end) continue;
                            rs.add("{\"offset\":" + r.offset() + ",\"timestamp\":" + r.timestamp() + ",\"value\":"
                                    + q(new String(r.value(), StandardCharsets.UTF_8)) + "}");
                            next = r.offset() + 1;
                        }
                    } while (next < end);
                    return "{\"records\":" + rs + "}";
                }
            }
            case "describe-group": {
                ConsumerGroupDescription d = get(admin.describeConsumerGroups(List.of(a[1])).all()).get(a[1]);
                StringJoiner ms = new StringJoiner(",", "[", "]");
                for (MemberDescription m : d.members()) {
                    StringJoiner ps = new StringJoiner(",", "[", "]");
                    m.assignment().topicPartitions().stream().map(TopicPartition::partition).sorted()
                            .forEach(p -> ps.add(Integer.toString(p)));
                    ms.add("{\"member_id\":" + q(m.consumerId()) + ",\"instance_id\":" + q(m.groupInstanceId().orElse(null))
                            + ",\"client_id\":" + q(m.clientId()) + ",\"partitions\":" + ps + "}");
                }
                return "{\"group\":" + q(d.groupId()) + ",\"state\":" + q(d.groupState().name()) + ",\"assignor\":"
                        + q(d.partitionAssignor()) + ",\"members\":" + ms + "}";
            }
            default:
                throw new IllegalArgumentException("unknown command " + a[0]);
        }
    }
}
