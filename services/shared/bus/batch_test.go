package bus_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

// batchLog records the batches a runner handed out.
type batchLog struct {
	mu    sync.Mutex
	sizes []int
	at    []time.Time
}

func (b *batchLog) add(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sizes = append(b.sizes, n)
	b.at = append(b.at, time.Now())
}

func (b *batchLog) get() ([]int, []time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.sizes...), append([]time.Time(nil), b.at...)
}

func startBatches(t *testing.T, f *fixture, r *bus.BatchRunner) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// A lone message goes to a free worker at once, however long the linger:
// nothing else is pending, so nothing is worth waiting for.
func TestBatchRunnerSendsALoneMessageAtOnce(t *testing.T) {
	f := newFixture(t, 3)
	settler := &bus.Settler{Consumer: testConsumer, Retry: fastRetry(3), Publisher: f.pub, Metrics: f.metrics}
	var log batchLog
	const linger = 3 * time.Second
	startBatches(t, f, &bus.BatchRunner{Name: testConsumer, Consumer: f.consumer, Settler: settler, Size: 10, Linger: linger, Workers: 2,
		Handle: func(ctx context.Context, msgs []jetstream.Msg) {
			log.add(len(msgs))
			for _, m := range msgs {
				settler.Settle(ctx, m, nil)
			}
		}})
	for i := range 3 {
		sent := time.Now()
		f.publish(t, "t.lone", fmt.Sprint(i), nil)
		testkit.Eventually(t, "the message handled", 5*time.Second, func() bool { s, _ := log.get(); return len(s) == i+1 })
		sizes, at := log.get()
		if d := at[i].Sub(sent); sizes[i] != 1 || d > linger/6 {
			t.Errorf("message %d: a batch of %d handed out %s after it was published, want 1 well under the %s linger", i, sizes[i], d, linger)
		}
	}
}

// A backlog goes in full batches, without waiting out the linger for the
// last, partial one (nothing is pending after it).
func TestBatchRunnerBatchesABacklog(t *testing.T) {
	f := newFixture(t, 3)
	for i := range 25 {
		f.publish(t, "t.backlog", fmt.Sprint(i), nil)
	}
	// The consumer counts what is pending beyond each message it delivers
	// (its metadata, which the batching reads) from signals the stream
	// sends it after storing: on a loaded machine they may lag the
	// publishes' acks, and a message would look like the last one.
	testkit.Eventually(t, "the consumer to count the backlog", 5*time.Second, func() bool { return f.info(t).NumPending == 25 })
	settler := &bus.Settler{Consumer: testConsumer, Retry: fastRetry(3), Publisher: f.pub, Metrics: f.metrics}
	var log batchLog
	const linger = 3 * time.Second
	start := time.Now()
	startBatches(t, f, &bus.BatchRunner{Name: testConsumer, Consumer: f.consumer, Settler: settler, Size: 10, Linger: linger, Workers: 1,
		Handle: func(ctx context.Context, msgs []jetstream.Msg) {
			log.add(len(msgs))
			for _, m := range msgs {
				settler.Settle(ctx, m, nil)
			}
		}})
	f.settled(t)
	sizes, _ := log.get()
	if fmt.Sprint(sizes) != "[10 10 5]" {
		t.Errorf("batches %v, want [10 10 5]", sizes)
	}
	if d := time.Since(start); d > linger*2/3 {
		t.Errorf("the backlog took %s, want well under the %s linger", d, linger)
	}
}

// While every worker is busy, what arrives gathers into the next batch:
// batches form under load, without any linger.
func TestBatchRunnerFillsWhileWorkersAreBusy(t *testing.T) {
	f := newFixture(t, 3)
	settler := &bus.Settler{Consumer: testConsumer, Retry: fastRetry(3), Publisher: f.pub, Metrics: f.metrics}
	var log batchLog
	unblock := make(chan struct{})
	r := &bus.BatchRunner{Name: testConsumer, Consumer: f.consumer, Settler: settler, Size: 10, Workers: 1,
		Handle: func(ctx context.Context, msgs []jetstream.Msg) {
			log.add(len(msgs))
			if s, _ := log.get(); len(s) == 1 {
				<-unblock // the only worker is busy
			}
			for _, m := range msgs {
				settler.Settle(ctx, m, nil)
			}
		}}
	var filling atomic.Int32
	r.SetTaken(func(n int) { filling.Store(int32(n)) })
	startBatches(t, f, r)
	f.publish(t, "t.busy", "first", nil)
	testkit.Eventually(t, "the first batch", 5*time.Second, func() bool { s, _ := log.get(); return len(s) == 1 })
	for i := range 6 {
		f.publish(t, "t.busy", fmt.Sprint(i), nil)
	}
	testkit.Eventually(t, "the six delivered", 5*time.Second, func() bool { return f.info(t).NumAckPending == 7 })
	// Delivered is not yet received: on a loaded machine the six reach the
	// batching a moment later.
	testkit.Eventually(t, "the six taken while the worker is busy", 5*time.Second, func() bool { return filling.Load() == 6 })
	close(unblock)
	f.settled(t)
	if sizes, _ := log.get(); fmt.Sprint(sizes) != "[1 6]" {
		t.Errorf("batches %v, want [1 6]: the six that came while the worker was busy in one", sizes)
	}
}

// Redeliveries come back in waves after a wait (held for a budget, say),
// which the consumer's pending count does not show: they are worth
// lingering for, and go in batches.
func TestBatchRunnerBatchesRedeliveries(t *testing.T) {
	f := newFixture(t, 3)
	settler := &bus.Settler{Consumer: testConsumer, Retry: fastRetry(3), Publisher: f.pub, Metrics: f.metrics}
	var first, again batchLog
	startBatches(t, f, &bus.BatchRunner{Name: testConsumer, Consumer: f.consumer, Settler: settler, Size: 10, Linger: 500 * time.Millisecond, Workers: 4,
		Handle: func(ctx context.Context, msgs []jetstream.Msg) {
			for _, m := range msgs {
				meta, _ := m.Metadata()
				if meta.NumDelivered == 1 {
					first.add(1)
					settler.Settle(ctx, m, bus.Hold(fmt.Errorf("wait"), 300*time.Millisecond))
					continue
				}
				settler.Settle(ctx, m, nil)
			}
			if meta, _ := msgs[0].Metadata(); meta.NumDelivered > 1 {
				again.add(len(msgs))
			}
		}})
	for i := range 10 {
		f.publish(t, "t.again", fmt.Sprint(i), nil)
		testkit.Eventually(t, "held", 5*time.Second, func() bool { s, _ := first.get(); return len(s) == i+1 })
	}
	f.settled(t)
	if sizes, _ := again.get(); len(sizes) > 3 {
		t.Errorf("the 10 redeliveries went in batches %v, want them gathered", sizes)
	}
}
