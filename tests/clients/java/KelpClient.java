// End-to-end client for Kelp: Apache Kafka Java client (kafka-clients 4.x).
//
//   java -cp "$KELP_CACHE/java/libs/*" KelpClient.java --bootstrap HOST:PORT --topic T COMMAND [options]
//
// Commands (the contract shared by every program under tests/clients/, see tests/README.md):
//   create  [--partitions N]   Admin.createTopics, N partitions (default 3), replication factor 1,
//                              topic config max.message.bytes=2097152 (the record set has a 1 MiB value)
//   produce --input FILE       send the records of FILE (TSV, below); one producer per run of lines
//                              with the same codec, flushed at its end (= one batch per partition);
//                              prints one JSON line per acked record
//   consume                    partitions 0..N-1 from the earliest offset up to the high watermark
//                              (read at start), no group; prints one JSON line per record
//   offsets --times T1,T2..    per partition: earliest, latest and the offset for each timestamp
//
// Record lines: codec \t partition \t timestamp \t key \t value [\t header-name \t header-value]...
// where key, value and header values are base64 or "-" for null, and header names are base64 of UTF-8.
// JSON record: {"partition":P,"offset":O,"timestamp":T,"key":B64|null,"value":B64|null,
//               "headers":[["name",B64|null],...]}
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class KelpClient {
    /** Topic config max.message.bytes of `create`; client limits are above it (4 MiB). */
    static final String MAX_MESSAGE_BYTES = "2097152";
    static final Base64.Encoder B64 = Base64.getEncoder();
    static final Base64.Decoder UNB64 = Base64.getDecoder();

    static String b64(byte[] b) { return b == null ? "null" : "\"" + B64.encodeToString(b) + "\""; }

    static byte[] unb64(String s) { return s.equals("-") ? null : UNB64.decode(s); }

    static String jsonString(String s) {
        StringBuilder sb = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') sb.append('\\').append(c);
            else if (c < 0x20) sb.append(String.format("\\u%04x", (int) c));
            else sb.append(c);
        }
        return sb.append('"').toString();
    }

    static void printRecord(int partition, long offset, long ts, byte[] key, byte[] value, Iterable<Header> headers) {
        StringBuilder h = new StringBuilder("[");
        for (Header x : headers) {
            if (h.length() > 1) h.append(',');
            h.append('[').append(jsonString(x.key())).append(',').append(b64(x.value())).append(']');
        }
        h.append(']');
        System.out.println("{\"partition\":" + partition + ",\"offset\":" + offset + ",\"timestamp\":" + ts
                + ",\"key\":" + b64(key) + ",\"value\":" + b64(value) + ",\"headers\":" + h + "}");
    }

    static Properties props(String bootstrap, String clientId) {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("client.id", clientId);
        return p;
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> opt = new HashMap<>();
        String cmd = null;
        for (int i = 0; i < args.length; i++) {
            if (args[i].startsWith("--")) opt.put(args[i].substring(2), args[++i]);
            else cmd = args[i];
        }
        String bootstrap = opt.get("bootstrap"), topic = opt.get("topic");
        if (bootstrap == null || topic == null || cmd == null) {
            System.err.println("usage: KelpClient --bootstrap HOST:PORT --topic T create|produce|consume|offsets");
            System.exit(2);
        }
        switch (cmd) {
            case "create" -> create(bootstrap, topic, Integer.parseInt(opt.getOrDefault("partitions", "3")));
            case "produce" -> produce(bootstrap, topic, opt.get("input"));
            case "consume" -> consume(bootstrap, topic);
            case "offsets" -> offsets(bootstrap, topic, opt.getOrDefault("times", ""));
            default -> { System.err.println("unknown command " + cmd); System.exit(2); }
        }
    }

    static void create(String bootstrap, String topic, int partitions) throws Exception {
        try (Admin admin = Admin.create(props(bootstrap, "kelp-e2e-java-admin"))) {
            NewTopic t = new NewTopic(topic, partitions, (short) 1).configs(Map.of("max.message.bytes", MAX_MESSAGE_BYTES));
            admin.createTopics(List.of(t)).all().get(30, TimeUnit.SECONDS);
            // a broker's metadata may trail an acknowledged CreateTopics: ask again (at most 30 s)
            long deadline = System.currentTimeMillis() + 30_000;
            int n;
            while (true) {
                try {
                    n = admin.describeTopics(List.of(topic)).allTopicNames().get(30, TimeUnit.SECONDS)
                            .get(topic).partitions().size();
                    break;
                } catch (java.util.concurrent.ExecutionException e) {
                    if (!(e.getCause() instanceof org.apache.kafka.common.errors.UnknownTopicOrPartitionException)
                            || System.currentTimeMillis() > deadline) throw e;
                    Thread.sleep(200);
                }
            }
            System.out.println("{\"created\":" + jsonString(topic) + ",\"partitions\":" + n + "}");
        }
    }

    static void produce(String bootstrap, String topic, String input) throws Exception {
        List<String[]> lines = new ArrayList<>();
        for (String l : Files.readAllLines(Path.of(input))) if (!l.isEmpty()) lines.add(l.split("\t", -1));
        int i = 0;
        while (i < lines.size()) {
            String codec = lines.get(i)[0];
            int j = i;
            while (j < lines.size() && lines.get(j)[0].equals(codec)) j++;
            Properties pp = props(bootstrap, "kelp-e2e-java-producer-" + codec);
            pp.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
            pp.put(ProducerConfig.LINGER_MS_CONFIG, "1000");  // flush() below closes the batches
            pp.put(ProducerConfig.MAX_REQUEST_SIZE_CONFIG, "4194304");
            List<ProducerRecord<byte[], byte[]>> sent = new ArrayList<>();
            List<Future<RecordMetadata>> acks = new ArrayList<>();
            try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(pp, new ByteArraySerializer(), new ByteArraySerializer())) {
                for (String[] f : lines.subList(i, j)) {
                    RecordHeaders h = new RecordHeaders();
                    for (int k = 5; k + 1 < f.length; k += 2)
                        h.add(new String(UNB64.decode(f[k]), StandardCharsets.UTF_8), unb64(f[k + 1]));
                    ProducerRecord<byte[], byte[]> r = new ProducerRecord<>(topic, Integer.parseInt(f[1]),
                            Long.parseLong(f[2]), unb64(f[3]), unb64(f[4]), h);
                    sent.add(r);
                    acks.add(p.send(r));
                }
                p.flush();
                for (int k = 0; k < sent.size(); k++) {
                    RecordMetadata m = acks.get(k).get(60, TimeUnit.SECONDS);
                    ProducerRecord<byte[], byte[]> r = sent.get(k);
                    printRecord(m.partition(), m.offset(), m.timestamp(), r.key(), r.value(), r.headers());
                }
            }
            i = j;
        }
    }

    static List<TopicPartition> partitions(Admin admin, String topic) throws Exception {
        List<TopicPartition> tps = new ArrayList<>();
        for (var p : admin.describeTopics(List.of(topic)).allTopicNames().get(30, TimeUnit.SECONDS).get(topic).partitions())
            tps.add(new TopicPartition(topic, p.partition()));
        tps.sort(Comparator.comparingInt(TopicPartition::partition));
        return tps;
    }

    static void consume(String bootstrap, String topic) throws Exception {
        Properties cp = props(bootstrap, "kelp-e2e-java-consumer");
        cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        cp.put(ConsumerConfig.MAX_PARTITION_FETCH_BYTES_CONFIG, "4194304");
        cp.put(ConsumerConfig.FETCH_MAX_BYTES_CONFIG, "16777216");
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(cp, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            List<TopicPartition> tps = new ArrayList<>();
            for (var pi : c.partitionsFor(topic, Duration.ofSeconds(30))) tps.add(new TopicPartition(topic, pi.partition()));
            Map<TopicPartition, Long> end = c.endOffsets(tps, Duration.ofSeconds(30));
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> next = new HashMap<>();
            for (TopicPartition tp : tps) next.put(tp, c.position(tp, Duration.ofSeconds(30)));
            long deadline = System.currentTimeMillis() + 60_000;
            while (tps.stream().anyMatch(tp -> next.get(tp) < end.get(tp))) {
                if (System.currentTimeMillis() > deadline) throw new RuntimeException("timeout: at " + next + ", want " + end);
                for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(500))) {
                    TopicPartition tp = new TopicPartition(r.topic(), r.partition());
                    if (r.offset() >= end.get(tp)) continue;
                    printRecord(r.partition(), r.offset(), r.timestamp(), r.key(), r.value(), r.headers());
                    next.put(tp, r.offset() + 1);
                }
            }
        }
    }

    static void offsets(String bootstrap, String topic, String times) throws Exception {
        try (Admin admin = Admin.create(props(bootstrap, "kelp-e2e-java-admin"))) {
            List<TopicPartition> tps = partitions(admin, topic);
            Map<TopicPartition, OffsetSpec> req = new HashMap<>();
            tps.forEach(tp -> req.put(tp, OffsetSpec.earliest()));
            var earliest = admin.listOffsets(req).all().get(30, TimeUnit.SECONDS);
            tps.forEach(tp -> req.put(tp, OffsetSpec.latest()));
            var latest = admin.listOffsets(req).all().get(30, TimeUnit.SECONDS);
            List<Long> ts = new ArrayList<>();
            for (String t : times.split(",")) if (!t.isEmpty()) ts.add(Long.parseLong(t));
            List<Map<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo>> byTime = new ArrayList<>();
            for (long t : ts) {
                tps.forEach(tp -> req.put(tp, OffsetSpec.forTimestamp(t)));
                byTime.add(admin.listOffsets(req).all().get(30, TimeUnit.SECONDS));
            }
            for (TopicPartition tp : tps) {
                StringBuilder sb = new StringBuilder("[");
                for (int k = 0; k < ts.size(); k++) {
                    long o = byTime.get(k).get(tp).offset();
                    if (k > 0) sb.append(',');
                    sb.append('[').append(ts.get(k)).append(',').append(o < 0 ? "null" : Long.toString(o)).append(']');
                }
                System.out.println("{\"partition\":" + tp.partition() + ",\"earliest\":" + earliest.get(tp).offset()
                        + ",\"latest\":" + latest.get(tp).offset() + ",\"times\":" + sb + "]}");
            }
        }
    }
}
