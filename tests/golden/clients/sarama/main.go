// Golden-bytes client for Kelp: IBM/sarama (ClusterAdmin, SyncProducer, ConsumerGroup, Consumer).
//
//	go run . BOOTSTRAP
package main

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
)

func logf(f string, a ...any) { fmt.Printf("[golden] "+f+"\n", a...) }

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "FATAL:", err)
		os.Exit(1)
	}
}

const (
	topic   = "golden-sarama"
	txTopic = "golden-sarama-tx"
	group   = "golden-sarama-group"
)

func cfg(clientID string) *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V4_0_0_0
	c.ClientID = clientID
	return c
}

type handler struct {
	got  *int64
	want int64
	done context.CancelFunc
}

func (h handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h handler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		s.MarkMessage(m, "")
		if atomic.AddInt64(h.got, 1) >= h.want {
			s.Commit()
			h.done()
		}
	}
	s.Commit()
	return nil
}

func main() {
	boot := []string{os.Args[1]}
	adm, err := sarama.NewClusterAdmin(boot, cfg("golden-sarama-admin"))
	must(err)

	// --- create topics + metadata ---
	must(adm.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false))
	must(adm.CreateTopic(txTopic, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false))
	logf("created %s %s", topic, txTopic)
	time.Sleep(500 * time.Millisecond)
	ts, err := adm.ListTopics()
	must(err)
	logf("topics %d", len(ts))
	md, err := adm.DescribeTopics([]string{topic})
	must(err)
	logf("describe partitions=%d", len(md[0].Partitions))
	brokers, ctrl, err := adm.DescribeCluster()
	must(err)
	logf("cluster brokers=%d controller=%d", len(brokers), ctrl)
	ce, err := adm.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic})
	must(err)
	logf("configs %d", len(ce))

	// --- produce: one SyncProducer per codec (sarama defaults: acks=WaitForLocal, not idempotent) ---
	t0 := time.Now().UnixMilli()
	total := 0
	codecs := []struct {
		name string
		c    sarama.CompressionCodec
	}{
		{"none", sarama.CompressionNone}, {"gzip", sarama.CompressionGZIP}, {"snappy", sarama.CompressionSnappy},
		{"lz4", sarama.CompressionLZ4}, {"zstd", sarama.CompressionZSTD},
	}
	for _, cc := range codecs {
		c := cfg("golden-sarama-producer-" + cc.name)
		c.Producer.Return.Successes = true
		c.Producer.Compression = cc.c
		c.Producer.Partitioner = sarama.NewManualPartitioner
		if cc.name == "zstd" { // one idempotent producer, acks=all
			c.Producer.Idempotent = true
			c.Producer.RequiredAcks = sarama.WaitForAll
			c.Net.MaxOpenRequests = 1
		}
		p, err := sarama.NewSyncProducer(boot, c)
		must(err)
		var ms []*sarama.ProducerMessage
		for part := int32(0); part < 3; part++ {
			for i := 0; i < 10; i++ {
				m := &sarama.ProducerMessage{Topic: topic, Partition: part, Timestamp: time.UnixMilli(t0 + int64(total))}
				m.Headers = []sarama.RecordHeader{{Key: []byte("codec"), Value: []byte(cc.name)}, {Key: []byte("idx"), Value: []byte(fmt.Sprint(i))}}
				if i == 0 {
					m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte("null-header"), Value: nil})
				}
				if i != 1 {
					m.Key = sarama.StringEncoder(fmt.Sprintf("key-%d-%d", part, i))
				}
				if i != 2 {
					m.Value = sarama.StringEncoder(fmt.Sprintf("value-%s-%d-%d-hello kelp hello kelp", cc.name, part, i))
				}
				ms = append(ms, m)
				total++
			}
		}
		must(p.SendMessages(ms))
		must(p.Close())
		logf("produced codec=%s", cc.name)
	}
	pc := cfg("golden-sarama-partitioner")
	pc.Producer.Return.Successes = true
	p, err := sarama.NewSyncProducer(boot, pc)
	must(err)
	for i := 0; i < 6; i++ {
		_, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprintf("k%d", i)), Value: sarama.StringEncoder(fmt.Sprintf("v%d", i))})
		must(err)
		total++
	}
	must(p.Close())
	logf("produced total %d", total)

	// --- transactions ---
	tc := cfg("golden-sarama-txn")
	tc.Producer.Return.Successes = true
	tc.Producer.Idempotent = true
	tc.Producer.RequiredAcks = sarama.WaitForAll
	tc.Producer.Transaction.ID = "golden-sarama-txn-1"
	tc.Producer.Partitioner = sarama.NewManualPartitioner
	tc.Net.MaxOpenRequests = 1
	tp, err := sarama.NewSyncProducer(boot, tc)
	must(err)
	must(tp.BeginTxn())
	for i := int32(0); i < 3; i++ {
		_, _, err := tp.SendMessage(&sarama.ProducerMessage{Topic: txTopic, Partition: i, Key: sarama.StringEncoder(fmt.Sprintf("tk%d", i)), Value: sarama.StringEncoder(fmt.Sprintf("committed-%d", i))})
		must(err)
	}
	must(tp.CommitTxn())
	must(tp.BeginTxn())
	_, _, err = tp.SendMessage(&sarama.ProducerMessage{Topic: txTopic, Partition: 0, Key: sarama.StringEncoder("tk-abort"), Value: sarama.StringEncoder("aborted")})
	must(err)
	must(tp.AbortTxn())
	must(tp.Close())
	logf("transactions done")

	// --- list offsets ---
	cl, err := sarama.NewClient(boot, cfg("golden-sarama-client"))
	must(err)
	latest := map[int32]int64{}
	for part := int32(0); part < 3; part++ {
		a, err := cl.GetOffset(topic, part, sarama.OffsetOldest)
		must(err)
		b, err := cl.GetOffset(topic, part, sarama.OffsetNewest)
		must(err)
		c, err := cl.GetOffset(topic, part, t0+20)
		must(err)
		latest[part] = b
		logf("p%d earliest=%d latest=%d bytime=%d", part, a, b, c)
	}
	cl.Close()

	// --- consumer group ---
	gc := cfg("golden-sarama-consumer")
	gc.Consumer.Offsets.Initial = sarama.OffsetOldest
	gc.Consumer.Offsets.AutoCommit.Enable = false
	gc.Consumer.IsolationLevel = sarama.ReadCommitted
	cg, err := sarama.NewConsumerGroup(boot, group, gc)
	must(err)
	var got int64
	want := int64(total + 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	done := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic, txTopic}, handler{&got, want, cancel}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	// describe/list groups while the member is alive
	for atomic.LoadInt64(&got) < want/2 && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	lg, err := adm.ListConsumerGroups()
	must(err)
	logf("groups %v", lg)
	dg, err := adm.DescribeConsumerGroups([]string{group})
	must(err)
	logf("describe group state=%s members=%d", dg[0].State, len(dg[0].Members))
	<-ctx.Done()
	must(<-done)
	must(cg.Close())
	logf("group consumed %d of %d", got, want)
	og, err := adm.ListConsumerGroupOffsets(group, nil)
	must(err)
	logf("group offsets topics=%d", len(og.Blocks))
	if got < want {
		must(fmt.Errorf("consumed only %d of %d", got, want))
	}

	// --- partition consumer (no group) from the beginning ---
	sc, err := sarama.NewConsumer(boot, cfg("golden-sarama-assign"))
	must(err)
	n := 0
	for part := int32(0); part < 3; part++ {
		pcn, err := sc.ConsumePartition(topic, part, sarama.OffsetOldest)
		must(err)
		timeout := time.After(10 * time.Second)
	loop:
		for {
			select {
			case m := <-pcn.Messages():
				n++
				if m.Offset+1 >= latest[part] {
					break loop
				}
			case <-timeout:
				break loop
			}
		}
		pcn.Close()
	}
	sc.Close()
	logf("partition consumer read %d", n)

	// --- cleanup ---
	must(adm.DeleteConsumerGroup(group))
	must(adm.DeleteTopic(topic))
	must(adm.DeleteTopic(txTopic))
	must(adm.Close())
	logf("deleted topics and group")
}
