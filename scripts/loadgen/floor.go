package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The raw-JetStream floor: what the JetStream operations a flip cannot do
// without cost on the same server, in the same run, client and server CPU
// together. A flip needs at least (see README, Performance):
//
//	5 publishes  the event (ingest), the member's record (a CAS update),
//	             the decision, its audit record, the write's audit record
//	5 gets       the member's record (to update it), the contacts its email
//	             finds, the contact's row, its last decision, the members
//	             the contact's email finds
//	2 deliveries the event to the validator, the decision to the writer,
//	             each acknowledged
const (
	floorPublishes  = 5
	floorGets       = 5
	floorDeliveries = 2
)

// opCost is what one kind of operation cost.
type opCost struct {
	Ops     int
	PerSec  float64
	CPUPer  time.Duration // stack and client together
	Clients int
}

// floor is the measured floor.
type floor struct {
	Publish, Get, Deliver opCost
}

// PerFlip is the least CPU a flip's JetStream operations take.
func (f floor) PerFlip() time.Duration {
	return time.Duration(floorPublishes)*f.Publish.CPUPer + time.Duration(floorGets)*f.Get.CPUPer +
		time.Duration(floorDeliveries)*f.Deliver.CPUPer
}

const (
	floorStream  = "BENCH_FLOOR"
	floorBucket  = "bench_floor"
	floorPayload = 320 // bytes: a profile event, a row, a decision are about this size
)

// measureFloor runs each operation with clients concurrent clients on the
// stack's NATS server, in scratch streams it removes afterwards.
func measureFloor(ctx context.Context, js jetstream.JetStream, opsURL string, ops, clients int) (floor, error) {
	var f floor
	stream, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: floorStream, Subjects: []string{"bench.floor.>"},
		Storage: jetstream.FileStorage, Duplicates: time.Hour, MaxAge: time.Hour})
	if err != nil {
		return f, fmt.Errorf("floor stream: %w", err)
	}
	defer func() { _ = js.DeleteStream(context.WithoutCancel(ctx), floorStream) }()
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: floorBucket, History: 1, Storage: jetstream.FileStorage})
	if err != nil {
		return f, fmt.Errorf("floor bucket: %w", err)
	}
	defer func() { _ = js.DeleteKeyValue(context.WithoutCancel(ctx), floorBucket) }()
	payload := make([]byte, floorPayload)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	const keys = 1000
	for i := range keys {
		if _, err := kv.Put(ctx, "k"+strconv.Itoa(i), payload); err != nil {
			return f, err
		}
	}
	var seq atomic.Int64
	if f.Publish, err = measure(ctx, opsURL, ops, clients, func(i int) error {
		n := seq.Add(1)
		_, err := js.Publish(ctx, "bench.floor.p."+strconv.Itoa(int(n%4096)), payload, jetstream.WithMsgID("floor-"+strconv.FormatInt(n, 10)))
		return err
	}); err != nil {
		return f, fmt.Errorf("floor publish: %w", err)
	}
	if f.Get, err = measure(ctx, opsURL, ops, clients, func(i int) error {
		_, err := kv.Get(ctx, "k"+strconv.Itoa(i%keys))
		return err
	}); err != nil {
		return f, fmt.Errorf("floor get: %w", err)
	}
	if f.Deliver, err = measureDeliveries(ctx, js, stream, opsURL, ops, clients, payload); err != nil {
		return f, fmt.Errorf("floor deliveries: %w", err)
	}
	return f, nil
}

// measure runs op ops times over clients goroutines.
func measure(ctx context.Context, opsURL string, ops, clients int, op func(i int) error) (opCost, error) {
	c := opCost{Ops: ops, Clients: clients}
	before, err := scrapeProcess(ctx, opsURL)
	if err != nil {
		return c, err
	}
	self := selfCPU()
	start := time.Now()
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)); i <= ops; i = int(next.Add(1)) {
				if err := op(i); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if e := failed.Load(); e != nil {
		return c, *e
	}
	return c, c.finish(ctx, opsURL, before, self, elapsed)
}

func (c *opCost) finish(ctx context.Context, opsURL string, before processFigures, self time.Duration, elapsed time.Duration) error {
	after, err := scrapeProcess(ctx, opsURL)
	if err != nil {
		return err
	}
	cpu := time.Duration((after.CPUSeconds-before.CPUSeconds)*1e9) + selfCPU() - self
	c.PerSec = float64(c.Ops) / elapsed.Seconds()
	c.CPUPer = cpu / time.Duration(c.Ops)
	return nil
}

// measureDeliveries stores ops messages, then has clients pull consumers
// of one durable take and acknowledge them, as the services' consumers do.
func measureDeliveries(ctx context.Context, js jetstream.JetStream, stream jetstream.Stream, opsURL string, ops, clients int, payload []byte) (opCost, error) {
	c := opCost{Ops: ops, Clients: clients}
	for i := 0; i < ops; i += 1000 {
		var futures []jetstream.PubAckFuture
		for j := i; j < min(i+1000, ops); j++ {
			fut, err := js.PublishMsgAsync(&nats.Msg{Subject: "bench.floor.d", Data: payload})
			if err != nil {
				return c, err
			}
			futures = append(futures, fut)
		}
		for _, fut := range futures {
			select {
			case <-fut.Ok():
			case err := <-fut.Err():
				return c, err
			case <-ctx.Done():
				return c, ctx.Err()
			}
		}
	}
	cons, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "floor", FilterSubject: "bench.floor.d",
		AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 1000})
	if err != nil {
		return c, err
	}
	before, err := scrapeProcess(ctx, opsURL)
	if err != nil {
		return c, err
	}
	self := selfCPU()
	start := time.Now()
	var got atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			it, err := cons.Messages(jetstream.PullMaxMessages(2 * clients))
			if err != nil {
				errs <- err
				return
			}
			defer it.Stop()
			for got.Load() < int64(ops) {
				m, err := it.Next(jetstream.NextMaxWait(time.Second))
				if errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				if err := m.Ack(); err != nil {
					errs <- err
					return
				}
				got.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return c, err
	}
	return c, c.finish(ctx, opsURL, before, self, time.Since(start))
}
