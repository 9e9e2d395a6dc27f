// Consumer-group member and keyed producer for Kelp's group tests: Apache Kafka Java client
// (kafka-clients 4.x, classic group protocol).
//
//   java -cp "$KELP_CACHE/java/libs/*" KelpGroup.java --bootstrap HOST:PORT --topic T COMMAND [options]
//
// Commands:
//   member --group G        subscribe to T in group G and consume until told to stop; runs until EOF on
//                           stdin or a `close` line (then closes the consumer: a dynamic member leaves the
//                           group, a static one stays). Options:
//          [--assignor range|roundrobin|sticky|cooperative-sticky]   (default: the client's default list)
//          [--instance ID]          group.instance.id (static membership)
//          [--session-ms N] [--heartbeat-ms N] [--max-poll-records N] [--client-id ID]
//          [--protocol consumer [--remote-assignor uniform|range]]   KIP-848 instead of classic
//          [--commit-until N]       commit only the first N records printed (later ones stay uncommitted)
//          [--stop-after N]         print at most N records (later ones are dropped, never committed)
//        Offsets are committed (commitSync) after each poll for the records printed, and for the
//        revoked partitions in onPartitionsRevoked, so that no record is delivered twice across a
//        rebalance of live members. auto.offset.reset=earliest, enable.auto.commit=false.
//        Other stdin lines: `status` (prints a status event).
//   produce --count N --partitions P [--first I] [--rounds R]
//                           a producer with the client's defaults (idempotent, acks=all) sends records
//                           key "k<i>", value "v<i>" for i in I..I+N-1 to partition i % P, in R rounds
//                           (flush after each, printing a "flushed" event); then one ack line per
//                           record, in send order.
//          [--until-stop yes] go on with more rounds of the same size after N until `stop` or EOF on
//                           stdin (at least N records are sent)
//          [--pause-ms N]   sleep N ms after each round
//
// Output, one JSON line each (logs on stderr):
//   {"event":"assigned","added":[P..],"partitions":[P..],"generation":G,"member_id":M}   after each rebalance
//   {"event":"revoked","partitions":[P..]}   {"event":"lost","partitions":[P..]}
//   {"event":"record","partition":P,"offset":O,"key":K,"value":V}
//   {"event":"committed","offsets":[[P,O],..]}   {"event":"commit-failed","error":E}
//   {"event":"status","generation":G,"member_id":M,"partitions":[P..]}
//   {"event":"closed"}
//   {"event":"error","exception":CLASS,"message":M}   the command failed (then exit status 1)
//   {"event":"ack","partition":P,"offset":O,"key":K,"value":V}   (produce)
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.*;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.consumer.*;
import org.apache.kafka.clients.producer.*;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class KelpGroup {
    static Map<String, String> opt = new HashMap<>();

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

    static synchronized void emit(String json) {
        System.out.println(json);
        System.out.flush();
    }

    static String parts(Collection<TopicPartition> tps) {
        StringJoiner j = new StringJoiner(",", "[", "]");
        tps.stream().map(TopicPartition::partition).sorted().forEach(p -> j.add(Integer.toString(p)));
        return j.toString();
    }

    static int intOpt(String name, int dflt) {
        return opt.containsKey(name) ? Integer.parseInt(opt.get(name)) : dflt;
    }

    public static void main(String[] args) throws Exception {
        String cmd = null;
        for (int i = 0; i < args.length; i++) {
            if (args[i].startsWith("--")) opt.put(args[i].substring(2), args[++i]);
            else cmd = args[i];
        }
        if (opt.get("bootstrap") == null || opt.get("topic") == null || cmd == null) {
            System.err.println("usage: KelpGroup --bootstrap HOST:PORT --topic T member|produce [options]");
            System.exit(2);
        }
        try {
            switch (cmd) {
                case "member" -> member();
                case "produce" -> produce();
                default -> { System.err.println("unknown command " + cmd); System.exit(2); }
            }
        } catch (Throwable e) {
            // printed here: the source launcher of JDK 17 can fail while printing it
            e.printStackTrace();
            emit("{\"event\":\"error\",\"exception\":" + q(e.getClass().getName()) + ",\"message\":"
                    + q(String.valueOf(e.getMessage())) + "}");
            System.exit(1);
        }
    }

    static void produce() throws Exception {
        String topic = opt.get("topic");
        int count = intOpt("count", 100), partitions = intOpt("partitions", 3), first = intOpt("first", 0);
        int rounds = Math.max(1, intOpt("rounds", 1));
        int pauseMs = intOpt("pause-ms", 0);
        Properties pp = new Properties();
        pp.put("bootstrap.servers", opt.get("bootstrap"));
        pp.put("client.id", opt.getOrDefault("client-id", "kelp-e2e-java-group-producer"));
        List<Future<RecordMetadata>> acks = new ArrayList<>();
        List<ProducerRecord<String, String>> sent = new ArrayList<>();
        try (KafkaProducer<String, String> p = new KafkaProducer<>(pp, new StringSerializer(), new StringSerializer())) {
            int perRound = (count + rounds - 1) / rounds;
            // --until-stop: keep sending rounds past --count until `stop` (or EOF) on stdin, so that
            // a test can act while records are certainly still in flight however fast the machine
            java.util.concurrent.atomic.AtomicBoolean stop = new java.util.concurrent.atomic.AtomicBoolean(
                    !opt.containsKey("until-stop"));
            if (!stop.get()) {
                Thread t = new Thread(() -> {
                    try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
                        String line;
                        while ((line = in.readLine()) != null && !line.trim().equals("stop")) { }
                    } catch (Exception e) { }
                    stop.set(true);
                });
                t.setDaemon(true);
                t.start();
            }
            for (int i = first; ; i++) {
                boolean roundEnd = (i - first) % perRound == 0;
                if (roundEnd && i >= first + count && stop.get()) break;
                ProducerRecord<String, String> r = new ProducerRecord<>(topic, i % partitions, "k" + i, "v" + i);
                sent.add(r);
                acks.add(p.send(r));
                if ((i - first + 1) % perRound == 0) {
                    p.flush();
                    emit("{\"event\":\"flushed\",\"sent\":" + (i - first + 1) + "}");
                    if (pauseMs > 0) Thread.sleep(pauseMs);
                }
            }
            p.flush();
            for (int k = 0; k < sent.size(); k++) {
                RecordMetadata m = acks.get(k).get(120, TimeUnit.SECONDS);
                emit("{\"event\":\"ack\",\"partition\":" + m.partition() + ",\"offset\":" + m.offset() + ",\"key\":"
                        + q(sent.get(k).key()) + ",\"value\":" + q(sent.get(k).value()) + "}");
            }
        }
    }

    static KafkaConsumer<String, String> consumer;
    /** next offset of each partition for the records printed and not yet committed */
    static final Map<TopicPartition, OffsetAndMetadata> pending = new HashMap<>();

    static void commit(Map<TopicPartition, OffsetAndMetadata> offsets) {
        if (offsets.isEmpty()) return;
        try {
            consumer.commitSync(offsets, Duration.ofSeconds(30));
            StringJoiner j = new StringJoiner(",", "[", "]");
            offsets.entrySet().stream().sorted(Comparator.comparingInt(e -> e.getKey().partition()))
                    .forEach(e -> j.add("[" + e.getKey().partition() + "," + e.getValue().offset() + "]"));
            emit("{\"event\":\"committed\",\"offsets\":" + j + "}");
            for (var e : offsets.entrySet()) pending.remove(e.getKey(), e.getValue());
        } catch (RuntimeException e) {
            // RebalanceInProgress: the revocation that follows commits again; CommitFailed: the
            // member lost its partitions (the test sees that as a duplicate or a failure)
            System.err.println("commit failed: " + e);
            emit("{\"event\":\"commit-failed\",\"error\":" + q(e.getClass().getSimpleName()) + "}");
        }
    }

    static String generation() {
        try {
            ConsumerGroupMetadata g = consumer.groupMetadata();
            return "\"generation\":" + g.generationId() + ",\"member_id\":" + q(g.memberId());
        } catch (RuntimeException e) {
            return "\"generation\":null,\"member_id\":null";
        }
    }

    static void member() throws Exception {
        String topic = opt.get("topic");
        Properties cp = new Properties();
        cp.put("bootstrap.servers", opt.get("bootstrap"));
        cp.put("client.id", opt.getOrDefault("client-id", "kelp-e2e-java-member"));
        cp.put(ConsumerConfig.GROUP_ID_CONFIG, opt.get("group"));
        cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        // --protocol consumer selects KIP-848: the broker assigns, and the classic-only settings
        // (session timeout, heartbeat interval, client-side assignors) are the broker's business.
        boolean kip848 = "consumer".equals(opt.get("protocol"));
        cp.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, kip848 ? "consumer" : "classic");
        if (opt.containsKey("instance")) cp.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, opt.get("instance"));
        if (!kip848 && opt.containsKey("session-ms")) cp.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, opt.get("session-ms"));
        if (!kip848 && opt.containsKey("heartbeat-ms")) cp.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, opt.get("heartbeat-ms"));
        if (opt.containsKey("max-poll-records")) cp.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, opt.get("max-poll-records"));
        if (kip848 && opt.containsKey("remote-assignor")) cp.put(ConsumerConfig.GROUP_REMOTE_ASSIGNOR_CONFIG, opt.get("remote-assignor"));
        if (!kip848 && opt.containsKey("assignor")) {
            String a = switch (opt.get("assignor")) {
                case "range" -> RangeAssignor.class.getName();
                case "roundrobin" -> RoundRobinAssignor.class.getName();
                case "sticky" -> StickyAssignor.class.getName();
                case "cooperative-sticky" -> CooperativeStickyAssignor.class.getName();
                default -> throw new IllegalArgumentException("assignor " + opt.get("assignor"));
            };
            cp.put(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG, a);
        }
        long commitUntil = opt.containsKey("commit-until") ? Long.parseLong(opt.get("commit-until")) : Long.MAX_VALUE;
        long stopAfter = opt.containsKey("stop-after") ? Long.parseLong(opt.get("stop-after")) : Long.MAX_VALUE;

        BlockingQueue<String> commands = new LinkedBlockingQueue<>();
        Thread reader = new Thread(() -> {
            try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
                String l;
                while ((l = in.readLine()) != null) commands.add(l.trim());
            } catch (Exception e) {
                System.err.println("stdin: " + e);
            }
            commands.add("close");
        });
        reader.setDaemon(true);
        reader.start();

        consumer = new KafkaConsumer<>(cp, new StringDeserializer(), new StringDeserializer());
        consumer.subscribe(List.of(topic), new ConsumerRebalanceListener() {
            @Override
            public void onPartitionsRevoked(Collection<TopicPartition> revoked) {
                Map<TopicPartition, OffsetAndMetadata> mine = new HashMap<>();
                for (TopicPartition tp : revoked) if (pending.containsKey(tp)) mine.put(tp, pending.get(tp));
                commit(mine);
                revoked.forEach(pending::remove);
                emit("{\"event\":\"revoked\",\"partitions\":" + parts(revoked) + "}");
            }

            @Override
            public void onPartitionsLost(Collection<TopicPartition> lost) {
                lost.forEach(pending::remove);
                emit("{\"event\":\"lost\",\"partitions\":" + parts(lost) + "}");
            }

            @Override
            public void onPartitionsAssigned(Collection<TopicPartition> added) {
                emit("{\"event\":\"assigned\",\"added\":" + parts(added) + ",\"partitions\":"
                        + parts(consumer.assignment()) + "," + generation() + "}");
            }
        });
        long printed = 0;
        while (true) {
            String c = commands.poll();
            if (c != null) {
                if (c.equals("close")) break;
                if (c.equals("status"))
                    emit("{\"event\":\"status\"," + generation() + ",\"partitions\":" + parts(consumer.assignment()) + "}");
                continue;
            }
            ConsumerRecords<String, String> rs = consumer.poll(Duration.ofMillis(100));
            for (ConsumerRecord<String, String> r : rs) {
                if (printed >= stopAfter) break;
                emit("{\"event\":\"record\",\"partition\":" + r.partition() + ",\"offset\":" + r.offset() + ",\"key\":"
                        + q(r.key()) + ",\"value\":" + q(r.value()) + "}");
                printed++;
                if (printed <= commitUntil)
                    pending.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
            }
            commit(new HashMap<>(pending));
        }
        commit(new HashMap<>(pending));
        consumer.close(Duration.ofSeconds(30));
        emit("{\"event\":\"closed\"}");
    }
}
