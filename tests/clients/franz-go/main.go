// End-to-end client for Kelp: franz-go (kgo + kadm).
//
//	kelp-franz-go --bootstrap HOST:PORT --topic T create [--partitions N]
//	kelp-franz-go --bootstrap HOST:PORT --topic T produce --input FILE
//	kelp-franz-go --bootstrap HOST:PORT --topic T consume
//	kelp-franz-go --bootstrap HOST:PORT --topic T offsets --times T1,T2,...
//	kelp-franz-go --bootstrap HOST:PORT --topic T group --group G [--assignor NAME]
//
// The contract (commands, record file, JSON lines) is the same for every client: see tests/README.md.
package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var (
	bootstrap  = flag.String("bootstrap", "", "HOST:PORT")
	topic      = flag.String("topic", "", "topic")
	partitions = flag.Int("partitions", 3, "partitions for create")
	input      = flag.String("input", "", "record file for produce")
	times      = flag.String("times", "", "timestamps (ms) for offsets")
	group      = flag.String("group", "", "consumer group for group")
	assignor   = flag.String("assignor", "", "balancer for group (default: franz-go's, cooperative-sticky)")
	out        = json.NewEncoder(os.Stdout)
	outMu      sync.Mutex
)

// event prints one JSON line; safe from the client's callbacks
func event(m map[string]any) {
	outMu.Lock()
	defer outMu.Unlock()
	must(out.Encode(m))
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "FATAL:", err)
		os.Exit(1)
	}
}

// b64 is *string so that nil prints as JSON null
func b64(b []byte) *string {
	if b == nil {
		return nil
	}
	s := base64.StdEncoding.EncodeToString(b)
	return &s
}

func unb64(s string) []byte {
	if s == "-" {
		return nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	must(err)
	if b == nil {
		b = []byte{} // empty, not null
	}
	return b
}

func emit(r *kgo.Record) {
	hs := [][2]any{}
	for _, h := range r.Headers {
		hs = append(hs, [2]any{h.Key, b64(h.Value)})
	}
	must(out.Encode(map[string]any{"partition": r.Partition, "offset": r.Offset,
		"timestamp": r.Timestamp.UnixMilli(), "key": b64(r.Key), "value": b64(r.Value), "headers": hs}))
}

func client(id string, opts ...kgo.Opt) *kgo.Client {
	c, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(*bootstrap), kgo.ClientID(id)}, opts...)...)
	must(err)
	return c
}

func main() {
	flag.Parse()
	cmd := flag.Arg(0)
	must(flag.CommandLine.Parse(flag.Args()[min(1, flag.NArg()):])) // options after the command
	if *bootstrap == "" || *topic == "" || cmd == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: kelp-franz-go --bootstrap HOST:PORT --topic T create|produce|consume|offsets")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	switch cmd {
	case "create":
		create(ctx)
	case "produce":
		produce(ctx)
	case "consume":
		consume(ctx)
	case "offsets":
		offsets(ctx)
	case "group":
		groupMember()
	default:
		must(fmt.Errorf("unknown command %q", cmd))
	}
}

func create(ctx context.Context) {
	c := client("kelp-e2e-franz-admin")
	defer c.Close()
	adm := kadm.NewClient(c)
	// the record set has a 1 MiB value, more than Kafka's default max.message.bytes (1048588)
	cfg := map[string]*string{"max.message.bytes": kadm.StringPtr("2097152")}
	r, err := adm.CreateTopic(ctx, int32(*partitions), 1, cfg, *topic)
	must(err)
	must(r.Err)
	md, err := adm.Metadata(ctx, *topic)
	must(err)
	must(out.Encode(map[string]any{"created": *topic, "partitions": len(md.Topics[*topic].Partitions)}))
}

var codecs = map[string]kgo.CompressionCodec{"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(),
	"snappy": kgo.SnappyCompression(), "lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression()}

func produce(ctx context.Context) {
	f, err := os.Open(*input)
	must(err)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	var groups [][]*kgo.Record
	var groupCodec []string
	for sc.Scan() {
		if sc.Text() == "" {
			continue
		}
		fs := strings.Split(sc.Text(), "\t")
		part, err := strconv.Atoi(fs[1])
		must(err)
		ts, err := strconv.ParseInt(fs[2], 10, 64)
		must(err)
		r := &kgo.Record{Topic: *topic, Partition: int32(part), Timestamp: time.UnixMilli(ts),
			Key: unb64(fs[3]), Value: unb64(fs[4])}
		for k := 5; k+1 < len(fs); k += 2 {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: string(unb64(fs[k])), Value: unb64(fs[k+1])})
		}
		if len(groupCodec) == 0 || groupCodec[len(groupCodec)-1] != fs[0] {
			groupCodec = append(groupCodec, fs[0])
			groups = append(groups, nil)
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], r)
	}
	must(sc.Err())
	for i, recs := range groups {
		codec, ok := codecs[groupCodec[i]]
		if !ok {
			must(fmt.Errorf("unknown codec %q", groupCodec[i]))
		}
		p := client("kelp-e2e-franz-producer-"+groupCodec[i], kgo.ProducerBatchCompression(codec),
			kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(time.Second),
			kgo.ProducerBatchMaxBytes(4<<20))
		// Produce all, then Flush: one batch per partition; ProduceSync would send record by record
		errs := make([]error, len(recs))
		var wg sync.WaitGroup
		wg.Add(len(recs))
		for j, r := range recs {
			p.Produce(ctx, r, func(_ *kgo.Record, err error) { errs[j] = err; wg.Done() })
		}
		must(p.Flush(ctx))
		wg.Wait()
		must(errors.Join(errs...))
		for _, r := range recs {
			emit(r)
		}
		p.Close()
	}
}

func partitionIDs(ctx context.Context, adm *kadm.Client) []int32 {
	md, err := adm.Metadata(ctx, *topic)
	must(err)
	t, ok := md.Topics[*topic]
	if !ok {
		must(fmt.Errorf("no metadata for %s", *topic))
	}
	must(t.Err)
	ids := t.Partitions.Numbers()
	sort.Slice(ids, func(a, b int) bool { return ids[a] < ids[b] })
	return ids
}

func consume(ctx context.Context) {
	ac := client("kelp-e2e-franz-admin")
	defer ac.Close()
	adm := kadm.NewClient(ac)
	ids := partitionIDs(ctx, adm)
	eo, err := adm.ListEndOffsets(ctx, *topic)
	must(err)
	must(eo.Error())
	end, next := map[int32]int64{}, map[int32]int64{}
	start := map[int32]kgo.Offset{}
	for _, p := range ids {
		o, _ := eo.Lookup(*topic, p)
		end[p] = o.Offset
		start[p] = kgo.NewOffset().AtStart()
	}
	c := client("kelp-e2e-franz-consumer", kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{*topic: start}),
		kgo.FetchMaxPartitionBytes(4<<20), kgo.FetchMaxBytes(16<<20))
	defer c.Close()
	behind := func() bool {
		for _, p := range ids {
			if next[p] < end[p] {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(60 * time.Second)
	for behind() {
		if time.Now().After(deadline) {
			must(fmt.Errorf("timeout: at %v, want %v", next, end))
		}
		pctx, pc := context.WithTimeout(ctx, time.Second)
		fs := c.PollFetches(pctx)
		pc()
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				must(fmt.Errorf("fetch %s[%d]: %w", t, p, err))
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset < end[r.Partition] {
				emit(r)
				next[r.Partition] = r.Offset + 1
			}
		})
	}
}

func offsets(ctx context.Context) {
	ac := client("kelp-e2e-franz-admin")
	defer ac.Close()
	adm := kadm.NewClient(ac)
	ids := partitionIDs(ctx, adm)
	so, err := adm.ListStartOffsets(ctx, *topic)
	must(err)
	must(so.Error())
	eo, err := adm.ListEndOffsets(ctx, *topic)
	must(err)
	must(eo.Error())
	// time lookups with a raw ListOffsets request: kadm.ListOffsetsAfterMilli would turn the
	// broker's "none" (-1) into the end offset, and the test wants to see what the broker said
	byTime := map[int64]map[int32]int64{}
	var tss []int64
	for _, s := range strings.Split(*times, ",") {
		if s == "" {
			continue
		}
		ts, err := strconv.ParseInt(s, 10, 64)
		must(err)
		tss = append(tss, ts)
		req := kmsg.NewPtrListOffsetsRequest()
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = *topic
		for _, p := range ids {
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition, rp.Timestamp = p, ts
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, ac) // kgo splits it by partition leader
		must(err)
		byTime[ts] = map[int32]int64{}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				must(kerr.ErrorForCode(p.ErrorCode))
				byTime[ts][p.Partition] = p.Offset
			}
		}
	}
	for _, p := range ids {
		s, _ := so.Lookup(*topic, p)
		e, _ := eo.Lookup(*topic, p)
		ts := [][2]any{}
		for _, t := range tss {
			o, ok := byTime[t][p]
			var v any = o
			if !ok || o < 0 {
				v = nil
			}
			ts = append(ts, [2]any{t, v})
		}
		must(out.Encode(map[string]any{"partition": p, "earliest": s.Offset, "latest": e.Offset, "times": ts}))
	}
}

// groupMember is a member of consumer group --group subscribed to the topic until stdin closes (EOF
// or a "close" line); it prints the group event lines of tests/README.md. Rebalances wait while a
// poll's records are printed and committed (BlockRebalanceOnPoll), so none is delivered twice.
func groupMember() {
	stop := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			if strings.TrimSpace(sc.Text()) == "close" {
				break
			}
		}
		close(stop)
	}()
	var mu sync.Mutex
	owned := map[int32]bool{}
	list := func() []int32 {
		ps := []int32{}
		for p := range owned {
			ps = append(ps, p)
		}
		sort.Slice(ps, func(a, b int) bool { return ps[a] < ps[b] })
		return ps
	}
	sorted := func(ps []int32) []int32 {
		ps = append([]int32{}, ps...)
		sort.Slice(ps, func(a, b int) bool { return ps[a] < ps[b] })
		return ps
	}
	opts := []kgo.Opt{kgo.ConsumerGroup(*group), kgo.ConsumeTopics(*topic), kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(10 * time.Second), kgo.HeartbeatInterval(time.Second),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			mu.Lock()
			defer mu.Unlock()
			for _, p := range m[*topic] {
				owned[p] = true
			}
			event(map[string]any{"event": "assigned", "added": sorted(m[*topic]), "partitions": list()})
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			mu.Lock()
			defer mu.Unlock()
			for _, p := range m[*topic] {
				delete(owned, p)
			}
			event(map[string]any{"event": "revoked", "partitions": sorted(m[*topic])})
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			mu.Lock()
			defer mu.Unlock()
			for _, p := range m[*topic] {
				delete(owned, p)
			}
			event(map[string]any{"event": "lost", "partitions": sorted(m[*topic])})
		}),
	}
	switch *assignor {
	case "":
	case "range":
		opts = append(opts, kgo.Balancers(kgo.RangeBalancer()))
	case "roundrobin":
		opts = append(opts, kgo.Balancers(kgo.RoundRobinBalancer()))
	case "sticky":
		opts = append(opts, kgo.Balancers(kgo.StickyBalancer()))
	case "cooperative-sticky":
		opts = append(opts, kgo.Balancers(kgo.CooperativeStickyBalancer()))
	default:
		must(fmt.Errorf("unknown assignor %q", *assignor))
	}
	c := client("kelp-e2e-franz-member", opts...)
	ctx := context.Background()
	commit := func() {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		var offs [][2]int64
		err := c.CommitUncommittedOffsets(cctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, "commit failed:", err)
			event(map[string]any{"event": "commit-failed", "error": err.Error()})
			return
		}
		for _, ps := range c.CommittedOffsets() {
			for p, o := range ps {
				offs = append(offs, [2]int64{int64(p), o.Offset})
			}
		}
		sort.Slice(offs, func(a, b int) bool { return offs[a][0] < offs[b][0] })
		event(map[string]any{"event": "committed", "offsets": offs})
	}
	for done := false; !done; {
		select {
		case <-stop:
			done = true
			continue
		default:
		}
		pctx, pc := context.WithTimeout(ctx, 200*time.Millisecond)
		fs := c.PollFetches(pctx)
		pc()
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				must(fmt.Errorf("fetch %s[%d]: %w", t, p, err))
			}
		})
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			n++
			event(map[string]any{"event": "record", "partition": r.Partition, "offset": r.Offset,
				"key": string(r.Key), "value": string(r.Value)})
		})
		if n > 0 {
			commit()
		}
		c.AllowRebalance()
	}
	c.Close() // leaves the group
	event(map[string]any{"event": "closed"})
}
