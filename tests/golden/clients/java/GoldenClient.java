// Golden-bytes client for Kelp: exercises AdminClient, KafkaProducer and KafkaConsumer
// (kafka-clients 4.x) against a broker reached through tests/golden/capture.py.
//
// Run (single-file source launch, no build step):
//   java -cp 'libs/*' GoldenClient.java <bootstrap> <topic> <group> <group.protocol: classic|consumer>
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.*;
import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class GoldenClient {
    static byte[] b(String s) { return s == null ? null : s.getBytes(StandardCharsets.UTF_8); }

    static void log(String s) { System.out.println("[golden] " + s); System.out.flush(); }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], topic = args[1], group = args[2], protocol = args[3];
        String txTopic = topic + "-tx";

        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        ap.put(AdminClientConfig.CLIENT_ID_CONFIG, "golden-java-admin");
        try (Admin admin = Admin.create(ap)) {
            // --- create topic (3 partitions) + metadata / describe ---
            admin.createTopics(List.of(new NewTopic(topic, 3, (short) 1), new NewTopic(txTopic, 3, (short) 1)))
                 .all().get(30, TimeUnit.SECONDS);
            log("created " + topic + ", " + txTopic);
            log("cluster id " + admin.describeCluster().clusterId().get());
            log("topics " + admin.listTopics().names().get());
            log("describe " + admin.describeTopics(List.of(topic)).allTopicNames().get());
            log("configs " + admin.describeConfigs(List.of(new ConfigResource(ConfigResource.Type.TOPIC, topic)))
                    .all().get().values().iterator().next().entries().size() + " entries");

            // --- produce: one producer per codec, defaults (idempotent, acks=all) ---
            int total = 0;
            long t0 = System.currentTimeMillis();
            for (String codec : List.of("none", "gzip", "snappy", "lz4", "zstd")) {
                Properties pp = new Properties();
                pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
                pp.put(ProducerConfig.CLIENT_ID_CONFIG, "golden-java-producer-" + codec);
                pp.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
                pp.put(ProducerConfig.LINGER_MS_CONFIG, "50");
                try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(pp, new ByteArraySerializer(), new ByteArraySerializer())) {
                    List<java.util.concurrent.Future<RecordMetadata>> fs = new ArrayList<>();
                    for (int part = 0; part < 3; part++) {
                        for (int i = 0; i < 10; i++) {
                            RecordHeaders h = new RecordHeaders();
                            h.add(new RecordHeader("codec", b(codec)));
                            h.add(new RecordHeader("idx", b(Integer.toString(i))));
                            if (i == 0) h.add(new RecordHeader("null-header", null));
                            byte[] key = (i == 1) ? null : b("key-" + part + "-" + i);
                            byte[] val = (i == 2) ? null : b("value-" + codec + "-" + part + "-" + i + "-hello kelp hello kelp hello kelp");
                            fs.add(p.send(new ProducerRecord<>(topic, part, t0 + total, key, val, h)));
                            total++;
                        }
                    }
                    p.flush();
                    for (var f : fs) f.get();
                    log("produced codec=" + codec);
                }
            }
            // keyed records without explicit partition (default partitioner)
            Properties pp = new Properties();
            pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            pp.put(ProducerConfig.CLIENT_ID_CONFIG, "golden-java-producer-partitioner");
            try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(pp, new ByteArraySerializer(), new ByteArraySerializer())) {
                for (int i = 0; i < 6; i++) {
                    p.send(new ProducerRecord<>(topic, b("k" + i), b("v" + i))).get();
                    total++;
                }
            }
            log("produced total " + total);

            // --- transactional producer (small) ---
            Properties tp = new Properties();
            tp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            tp.put(ProducerConfig.CLIENT_ID_CONFIG, "golden-java-txn");
            tp.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, topic + "-txn-1");
            try (KafkaProducer<byte[], byte[]> p = new KafkaProducer<>(tp, new ByteArraySerializer(), new ByteArraySerializer())) {
                p.initTransactions();
                p.beginTransaction();
                for (int i = 0; i < 3; i++) p.send(new ProducerRecord<>(txTopic, i, b("tk" + i), b("committed-" + i)));
                p.commitTransaction();
                p.beginTransaction();
                p.send(new ProducerRecord<>(txTopic, 0, b("tk-abort"), b("aborted")));
                p.flush();
                p.abortTransaction();
                log("transactions done");
            }

            // --- list offsets: earliest / latest / by time / max timestamp ---
            Map<TopicPartition, OffsetSpec> req = new HashMap<>();
            for (int part = 0; part < 3; part++) req.put(new TopicPartition(topic, part), OffsetSpec.earliest());
            log("earliest " + admin.listOffsets(req).all().get());
            req.replaceAll((k, v) -> OffsetSpec.latest());
            log("latest " + admin.listOffsets(req).all().get());
            req.replaceAll((k, v) -> OffsetSpec.forTimestamp(t0 + 20));
            log("bytime " + admin.listOffsets(req).all().get());
            req.replaceAll((k, v) -> OffsetSpec.maxTimestamp());
            log("maxts " + admin.listOffsets(req).all().get());

            // --- consumer group: consume everything from the beginning, commit ---
            Properties cp = new Properties();
            cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            cp.put(ConsumerConfig.CLIENT_ID_CONFIG, "golden-java-consumer");
            cp.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            cp.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
            cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
            cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
            cp.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
            int got = 0;
            try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(cp, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
                c.subscribe(List.of(topic, txTopic));
                long deadline = System.currentTimeMillis() + 60_000;
                while (got < total + 3 && System.currentTimeMillis() < deadline) {
                    ConsumerRecords<byte[], byte[]> rs = c.poll(Duration.ofMillis(500));
                    got += rs.count();
                    if (!rs.isEmpty()) c.commitSync();
                }
                log("group consumed " + got + " of " + (total + 3));
                log("committed " + c.committed(new HashSet<>(c.assignment())));
                // consumer-side list offsets
                Map<TopicPartition, Long> ts = new HashMap<>();
                for (int part = 0; part < 3; part++) ts.put(new TopicPartition(topic, part), t0 + 20);
                log("offsetsForTimes " + c.offsetsForTimes(ts));
                log("beginning " + c.beginningOffsets(ts.keySet()) + " end " + c.endOffsets(ts.keySet()));

                // --- describe / list groups while the member is alive ---
                log("groups " + admin.listGroups().all().get());
                log("describe group " + admin.describeConsumerGroups(List.of(group)).all().get());
                log("group offsets " + admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get());
            }
            if (got < total + 3) throw new RuntimeException("consumed only " + got);

            // --- standalone consumer (assign, no group) from the beginning ---
            Properties sp = new Properties();
            sp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            sp.put(ConsumerConfig.CLIENT_ID_CONFIG, "golden-java-assign");
            try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(sp, new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
                List<TopicPartition> tps = List.of(new TopicPartition(topic, 0), new TopicPartition(topic, 1), new TopicPartition(topic, 2));
                c.assign(tps);
                c.seekToBeginning(tps);
                int n = 0;
                long deadline = System.currentTimeMillis() + 30_000;
                while (n < total && System.currentTimeMillis() < deadline) n += c.poll(Duration.ofMillis(500)).count();
                log("assigned consumer read " + n);
            }

            // --- groups after the member left; delete group + topics ---
            log("describe group (empty) " + admin.describeConsumerGroups(List.of(group)).all().get());
            admin.deleteConsumerGroups(List.of(group)).all().get();
            admin.deleteTopics(List.of(topic, txTopic)).all().get();
            log("deleted topics and group");
        }
    }
}
