// Golden-bytes client for Kelp: franz-go (kgo + kadm).
//
//	go run . BOOTSTRAP [classic|consumer]
//
// "consumer" opts the group consumer into KIP-848 (kgo.ServerSideBalancer).
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func logf(f string, a ...any) { fmt.Printf("[golden] "+f+"\n", a...) }

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "FATAL:", err)
		os.Exit(1)
	}
}

func main() {
	boot := os.Args[1]
	proto := "classic"
	if len(os.Args) > 2 {
		proto = os.Args[2]
	}
	suffix := ""
	if proto != "classic" {
		suffix = "-848"
	}
	topic := "golden-franz" + suffix
	txTopic := topic + "-tx"
	group := topic + "-group"
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	acl, err := kgo.NewClient(kgo.SeedBrokers(boot), kgo.ClientID("golden-franz-admin"))
	must(err)
	defer acl.Close()
	adm := kadm.NewClient(acl)

	// --- create topics + metadata ---
	cr, err := adm.CreateTopics(ctx, 3, 1, nil, topic, txTopic)
	must(err)
	for _, r := range cr.Sorted() {
		must(r.Err)
	}
	logf("created %s %s", topic, txTopic)
	bs, err := adm.ListBrokers(ctx)
	must(err)
	logf("brokers %v", bs.NodeIDs())
	md, err := adm.Metadata(ctx, topic)
	must(err)
	logf("metadata cluster=%s partitions=%d", md.Cluster, len(md.Topics[topic].Partitions))
	rc, err := adm.DescribeTopicConfigs(ctx, topic)
	must(err)
	logf("configs %d", len(rc[0].Configs))

	// --- produce: one client per codec; franz-go defaults: idempotent, acks=all ---
	t0 := time.Now().UnixMilli()
	total := 0
	codecs := []struct {
		name string
		c    kgo.CompressionCodec
	}{
		{"none", kgo.NoCompression()}, {"gzip", kgo.GzipCompression()}, {"snappy", kgo.SnappyCompression()},
		{"lz4", kgo.Lz4Compression()}, {"zstd", kgo.ZstdCompression()},
	}
	for _, cc := range codecs {
		p, err := kgo.NewClient(kgo.SeedBrokers(boot), kgo.ClientID("golden-franz-producer-"+cc.name),
			kgo.ProducerBatchCompression(cc.c), kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.ProducerLinger(50*time.Millisecond))
		must(err)
		var rs []*kgo.Record
		for part := int32(0); part < 3; part++ {
			for i := 0; i < 10; i++ {
				r := &kgo.Record{Topic: topic, Partition: part, Timestamp: time.UnixMilli(t0 + int64(total))}
				r.Headers = []kgo.RecordHeader{{Key: "codec", Value: []byte(cc.name)}, {Key: "idx", Value: []byte(fmt.Sprint(i))}}
				if i == 0 {
					r.Headers = append(r.Headers, kgo.RecordHeader{Key: "null-header", Value: nil})
				}
				if i != 1 {
					r.Key = []byte(fmt.Sprintf("key-%d-%d", part, i))
				}
				if i != 2 {
					r.Value = []byte(fmt.Sprintf("value-%s-%d-%d-hello kelp hello kelp", cc.name, part, i))
				}
				rs = append(rs, r)
				total++
			}
		}
		must(p.ProduceSync(ctx, rs...).FirstErr())
		p.Close()
		logf("produced codec=%s", cc.name)
	}
	// keyed records, default (sticky key) partitioner
	p, err := kgo.NewClient(kgo.SeedBrokers(boot), kgo.ClientID("golden-franz-partitioner"))
	must(err)
	for i := 0; i < 6; i++ {
		must(p.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(fmt.Sprintf("v%d", i))}).FirstErr())
		total++
	}
	p.Close()
	logf("produced total %d", total)

	// --- transactions: one committed, one aborted ---
	tp, err := kgo.NewClient(kgo.SeedBrokers(boot), kgo.ClientID("golden-franz-txn"),
		kgo.TransactionalID("golden-franz-txn-1"+suffix), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	must(err)
	must(tp.BeginTransaction())
	for i := int32(0); i < 3; i++ {
		must(tp.ProduceSync(ctx, &kgo.Record{Topic: txTopic, Partition: i, Key: []byte(fmt.Sprintf("tk%d", i)), Value: []byte(fmt.Sprintf("committed-%d", i))}).FirstErr())
	}
	must(tp.EndTransaction(ctx, kgo.TryCommit))
	must(tp.BeginTransaction())
	must(tp.ProduceSync(ctx, &kgo.Record{Topic: txTopic, Partition: 0, Key: []byte("tk-abort"), Value: []byte("aborted")}).FirstErr())
	must(tp.EndTransaction(ctx, kgo.TryAbort))
	tp.Close()
	logf("transactions done")

	// --- list offsets ---
	so, err := adm.ListStartOffsets(ctx, topic)
	must(err)
	eo, err := adm.ListEndOffsets(ctx, topic)
	must(err)
	to, err := adm.ListOffsetsAfterMilli(ctx, t0+20, topic)
	must(err)
	mo, err := adm.ListMaxTimestampOffsets(ctx, topic)
	must(err)
	for part := int32(0); part < 3; part++ {
		a, _ := so.Lookup(topic, part)
		b, _ := eo.Lookup(topic, part)
		c, _ := to.Lookup(topic, part)
		d, _ := mo.Lookup(topic, part)
		logf("p%d start=%d end=%d bytime=%d maxts=%d", part, a.Offset, b.Offset, c.Offset, d.Offset)
	}

	// --- group consumer ---
	opts := []kgo.Opt{kgo.SeedBrokers(boot), kgo.ClientID("golden-franz-consumer"),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic, txTopic), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted())}
	if proto == "consumer" {
		opts = append(opts, kgo.ServerSideBalancer(), kgo.Balancers(kgo.RangeBalancer()))
	}
	c, err := kgo.NewClient(opts...)
	must(err)
	want := total + 3
	got := 0
	deadline := time.Now().Add(60 * time.Second)
	for got < want && time.Now().Before(deadline) {
		pctx, pc := context.WithTimeout(ctx, 2*time.Second)
		fs := c.PollFetches(pctx)
		pc()
		fs.EachError(func(t string, p int32, err error) {
			if err != context.DeadlineExceeded {
				logf("fetch error %s %d: %v", t, p, err)
			}
		})
		n := fs.NumRecords()
		got += n
		if n > 0 {
			must(c.CommitUncommittedOffsets(ctx))
		}
	}
	logf("group consumed %d of %d", got, want)
	lg, err := adm.ListGroups(ctx)
	must(err)
	logf("groups %v", lg.Groups())
	dg, err := adm.DescribeGroups(ctx, group)
	must(err)
	logf("describe group state=%s members=%d", dg[group].State, len(dg[group].Members))
	if proto == "consumer" {
		dcg, err := adm.DescribeConsumerGroups(ctx, group)
		must(err)
		logf("describe consumer group state=%s", dcg[group].State)
	}
	fo, err := adm.FetchOffsets(ctx, group)
	must(err)
	logf("group offsets %d partitions", len(fo.Offsets()))
	c.Close()
	if got < want {
		must(fmt.Errorf("consumed only %d of %d", got, want))
	}

	// --- direct (assigned) consumer from the beginning ---
	dc, err := kgo.NewClient(kgo.SeedBrokers(boot), kgo.ClientID("golden-franz-direct"),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {
			0: kgo.NewOffset().AtStart(), 1: kgo.NewOffset().AtStart(), 2: kgo.NewOffset().AtStart()}}))
	must(err)
	n := 0
	deadline = time.Now().Add(30 * time.Second)
	for n < total && time.Now().Before(deadline) {
		pctx, pc := context.WithTimeout(ctx, 2*time.Second)
		n += dc.PollFetches(pctx).NumRecords()
		pc()
	}
	dc.Close()
	logf("direct consumer read %d", n)

	// --- cleanup ---
	dgr, err := adm.DeleteGroups(ctx, group)
	must(err)
	must(dgr.Error())
	dtr, err := adm.DeleteTopics(ctx, topic, txTopic)
	must(err)
	must(dtr.Error())
	logf("deleted topics and group")
}
