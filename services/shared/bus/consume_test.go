package bus_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

const testConsumer = "t-consumer"

type fixture struct {
	js       jetstream.JetStream
	consumer jetstream.Consumer
	pub      *bus.Publisher
	reg      *prometheus.Registry
	metrics  *bus.Metrics
}

// newFixture declares the topology (for NAC_DEADLETTER) and a test stream
// "T" on "t.>" with a durable consumer allowing maxDeliver deliveries.
func newFixture(t *testing.T, maxDeliver int) *fixture {
	t.Helper()
	_, js := connect(t)
	ctx := testContext(t)
	if err := bus.Declare(ctx, js, bus.DefaultOptions()); err != nil {
		t.Fatalf("Declare: %v", err)
	}
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.MemoryStorage})
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
	c, err := js.CreateOrUpdateConsumer(ctx, "T", jetstream.ConsumerConfig{
		Durable:    testConsumer,
		AckPolicy:  jetstream.AckExplicitPolicy,
		AckWait:    30 * time.Second,
		MaxDeliver: maxDeliver,
	})
	if err != nil {
		t.Fatalf("create consumer: %v", err)
	}
	reg := prometheus.NewRegistry()
	return &fixture{js: js, consumer: c, pub: bus.NewPublisher(js, 5*time.Second), reg: reg, metrics: bus.NewMetrics(reg)}
}

// fastRetry gives up after attempts deliveries, with backoffs of
// milliseconds so that the tests do not wait out real ones.
func fastRetry(attempts int) bus.RetryPolicy {
	return bus.RetryPolicy{MaxAttempts: attempts, Backoff: []time.Duration{50 * time.Millisecond, 100 * time.Millisecond}}
}

func (f *fixture) runner(h bus.Handler, maxDeliver int) *bus.Runner {
	return &bus.Runner{
		Name:          testConsumer,
		Consumer:      f.consumer,
		Handler:       h,
		Publisher:     f.pub,
		Workers:       2,
		Retry:         fastRetry(maxDeliver),
		HandleTimeout: 5 * time.Second,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics:       f.metrics,
	}
}

// start runs r until the test ends, and checks that Run then returns nil.
func start(t *testing.T, r *bus.Runner) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
	})
}

func (f *fixture) publish(t *testing.T, subject, data string, h nats.Header) {
	t.Helper()
	if err := f.pub.Publish(context.Background(), subject, "", []byte(data), h); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

func (f *fixture) info(t *testing.T) *jetstream.ConsumerInfo {
	t.Helper()
	info, err := f.consumer.Info(context.Background())
	if err != nil {
		t.Fatalf("consumer info: %v", err)
	}
	return info
}

// settled waits until the consumer has nothing pending or unacknowledged.
func (f *fixture) settled(t *testing.T) {
	t.Helper()
	testkit.Eventually(t, "the consumer to settle", 10*time.Second, func() bool {
		info := f.info(t)
		return info.NumAckPending == 0 && info.NumPending == 0 && info.Delivered.Stream > 0
	})
}

// counter reads a sample of a counter vector from the registry.
func counter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func handled(t *testing.T, reg *prometheus.Registry, outcome string) float64 {
	return counter(t, reg, "nac_messages_handled_total", map[string]string{"consumer": testConsumer, "outcome": outcome})
}

// oneDeadLetter waits for a dead letter and the message settled, then
// fails unless, after room for a wrong redelivery, it is the only one.
func (f *fixture) oneDeadLetter(t *testing.T) *jetstream.RawStreamMsg {
	t.Helper()
	testkit.Eventually(t, "a dead letter", 10*time.Second, func() bool { return len(f.deadLetters(t)) > 0 })
	f.settled(t)
	time.Sleep(300 * time.Millisecond) // room for a wrong redelivery
	dead := f.deadLetters(t)
	if len(dead) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dead))
	}
	return dead[0]
}

// deadLetters returns the messages of NAC_DEADLETTER.
func (f *fixture) deadLetters(t *testing.T) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	s, err := f.js.Stream(ctx, bus.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get dead letter %d: %v", seq, err)
		}
		out = append(out, m)
	}
	return out
}

func TestRunnerAcks(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3)
	var calls atomic.Int32
	var gotData atomic.Value
	start(t, f.runner(func(_ context.Context, m jetstream.Msg) error {
		calls.Add(1)
		gotData.Store(string(m.Data()))
		return nil
	}, 3))
	f.publish(t, "t.ok", "payload", nil)
	f.settled(t)

	if n := calls.Load(); n != 1 {
		t.Errorf("handler called %d times, want 1", n)
	}
	if d, _ := gotData.Load().(string); d != "payload" {
		t.Errorf("handler saw %q, want %q", d, "payload")
	}
	if info := f.info(t); info.AckFloor.Stream != 1 || info.NumRedelivered != 0 {
		t.Errorf("ack floor %d, redelivered %d; want 1, 0", info.AckFloor.Stream, info.NumRedelivered)
	}
	testkit.Eventually(t, "the acked counter", 5*time.Second, func() bool { return handled(t, f.reg, "acked") == 1 })
	if n := handled(t, f.reg, "retried") + handled(t, f.reg, "dead_lettered"); n != 0 {
		t.Errorf("retried + dead_lettered = %v, want 0", n)
	}
	if n := len(f.deadLetters(t)); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}

}

func TestRunnerPermanentDeadLetters(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 5)
	var calls atomic.Int32
	start(t, f.runner(func(context.Context, jetstream.Msg) error {
		calls.Add(1)
		return bus.Permanent(errors.New("row is malformed"))
	}, 5))
	h := nats.Header{}
	h.Set("X-Original", "kept")
	f.publish(t, "t.bad", "original data", h)

	d := f.oneDeadLetter(t)
	if want := "nac.deadletter." + testConsumer; d.Subject != want {
		t.Errorf("dead letter subject = %q, want %q", d.Subject, want)
	}
	if string(d.Data) != "original data" {
		t.Errorf("dead letter data = %q, want the original", d.Data)
	}
	for k, want := range map[string]string{
		bus.HeaderDeadReason:     "row is malformed",
		bus.HeaderDeadStream:     "T",
		bus.HeaderDeadSequence:   "1",
		bus.HeaderDeadSubject:    "t.bad",
		bus.HeaderDeadDeliveries: "1",
		"X-Original":             "kept",
	} {
		if got := d.Header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("handler called %d times, want 1 (no redelivery)", n)
	}
	if info := f.info(t); info.NumRedelivered != 0 || info.NumAckPending != 0 {
		t.Errorf("redelivered %d, ack pending %d; want 0, 0", info.NumRedelivered, info.NumAckPending)
	}
	testkit.Eventually(t, "the dead_lettered counter", 5*time.Second, func() bool { return handled(t, f.reg, "dead_lettered") == 1 })
	if n := handled(t, f.reg, "acked") + handled(t, f.reg, "retried"); n != 0 {
		t.Errorf("acked + retried = %v, want 0", n)
	}
}

func TestRunnerTransientThenSuccess(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 5)
	var calls atomic.Int32
	var mu sync.Mutex
	var deliveries []uint64
	start(t, f.runner(func(_ context.Context, m jetstream.Msg) error {
		meta, err := m.Metadata()
		if err != nil {
			return err
		}
		mu.Lock()
		deliveries = append(deliveries, meta.NumDelivered)
		mu.Unlock()
		if calls.Add(1) == 1 {
			return errors.New("dataverse is busy")
		}
		return nil
	}, 5))
	begin := time.Now()
	f.publish(t, "t.flaky", "x", nil)
	testkit.Eventually(t, "the second delivery", 10*time.Second, func() bool { return calls.Load() >= 2 })
	elapsed := time.Since(begin)
	f.settled(t)

	if n := calls.Load(); n != 2 {
		t.Errorf("handler called %d times, want 2", n)
	}
	mu.Lock()
	if len(deliveries) != 2 || deliveries[0] != 1 || deliveries[1] != 2 {
		t.Errorf("deliveries = %v, want [1 2]", deliveries)
	}
	mu.Unlock()
	// The backoff is jittered by up to a fifth either way.
	if backoff := fastRetry(5).Delay(1); elapsed < backoff*8/10 {
		t.Errorf("redelivered after %v, want the %v backoff less at most a fifth", elapsed, backoff)
	}
	testkit.Eventually(t, "the counters", 5*time.Second, func() bool {
		return handled(t, f.reg, "retried") == 1 && handled(t, f.reg, "acked") == 1
	})
	if n := len(f.deadLetters(t)); n != 0 {
		t.Errorf("%d dead letters, want none", n)
	}
}

func TestRunnerTransientExhaustsMaxDeliver(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2)
	var calls atomic.Int32
	start(t, f.runner(func(context.Context, jetstream.Msg) error {
		calls.Add(1)
		return errors.New("still down")
	}, 2))
	f.publish(t, "t.down", "y", nil)

	d := f.oneDeadLetter(t)
	if got := d.Header.Get(bus.HeaderDeadDeliveries); got != "2" {
		t.Errorf("%s = %q, want 2", bus.HeaderDeadDeliveries, got)
	}
	if got := d.Header.Get(bus.HeaderDeadReason); !strings.HasPrefix(got, "gave up after 2 deliveries") || !strings.HasSuffix(got, ": still down") {
		t.Errorf("%s = %q, want the deliveries and the last error", bus.HeaderDeadReason, got)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("handler called %d times, want 2", n)
	}
	testkit.Eventually(t, "the counters", 5*time.Second, func() bool {
		return handled(t, f.reg, "retried") == 1 && handled(t, f.reg, "dead_lettered") == 1
	})
}

func TestRunnerFinishesInFlightOnCancel(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3)
	entered := make(chan struct{})
	release := make(chan struct{})
	var finished atomic.Bool
	r := f.runner(func(ctx context.Context, _ jetstream.Msg) error {
		close(entered)
		<-release
		if ctx.Err() != nil {
			return ctx.Err() // the handler's context must outlive the run's
		}
		finished.Store(true)
		return nil
	}, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	f.publish(t, "t.slow", "z", nil)
	select {
	case <-entered:
	case <-time.After(10 * time.Second):
		t.Fatal("handler never called")
	}
	cancel()
	select {
	case err := <-done:
		t.Fatalf("Run returned %v while a message was in flight", err)
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the in-flight message finished")
	}
	if !finished.Load() {
		t.Error("the in-flight handler did not finish")
	}
	f.settled(t)
	if got := handled(t, f.reg, "acked"); got != 1 {
		t.Errorf("acked = %v, want 1", got)
	}
}

func TestRunnerStopsOnCancelWhenIdle(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3)
	r := f.runner(func(context.Context, jetstream.Msg) error { return nil }, 3)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestPermanent(t *testing.T) {
	t.Parallel()
	if bus.Permanent(nil) != nil {
		t.Error("Permanent(nil) != nil")
	}
	base := errors.New("base")
	p := bus.Permanent(base)
	if !bus.IsPermanent(p) || !errors.Is(p, base) || p.Error() != "base" {
		t.Errorf("Permanent(base) = %v: permanent %v, is base %v", p, bus.IsPermanent(p), errors.Is(p, base))
	}
	wrapped := errors.Join(errors.New("context"), p)
	if !bus.IsPermanent(wrapped) {
		t.Error("a wrapped permanent error is not permanent")
	}
	if bus.IsPermanent(base) {
		t.Error("a plain error is permanent")
	}
}

func TestNewMetricsLint(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := bus.NewMetrics(reg)
	if m == nil {
		t.Fatal("NewMetrics = nil")
	}
	// Vectors show up only once a series exists; run one message of each
	// outcome through a runner on this registry to populate them.
	f := newFixture(t, 2)
	f.reg, f.metrics = reg, m
	var calls atomic.Int32
	start(t, f.runner(func(_ context.Context, msg jetstream.Msg) error {
		calls.Add(1)
		if msg.Subject() == "t.fail" {
			return bus.Permanent(errors.New("no"))
		}
		return nil
	}, 2))
	f.publish(t, "t.ok", "a", nil)
	f.publish(t, "t.fail", "b", nil)
	testkit.Eventually(t, "both messages handled", 10*time.Second, func() bool {
		return handled(t, reg, "acked") == 1 && handled(t, reg, "dead_lettered") == 1
	})
	names := []string{"nac_messages_handled_total", "nac_message_handle_duration_seconds"}
	if n, err := testutil.GatherAndCount(reg, names...); err != nil || n != 3 {
		t.Fatalf("gathered %d series, %v; want 3 (2 outcomes, 1 histogram)", n, err)
	}
	problems, err := testutil.GatherAndLint(reg, names...)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}
}

func TestRunnerHandlesBufferedOnCancel(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3)
	for i := range 5 {
		f.publish(t, "t.buffered", strconv.Itoa(i), nil)
	}
	release := make(chan struct{})
	var calls atomic.Int32
	r := f.runner(func(context.Context, jetstream.Msg) error {
		calls.Add(1)
		<-release
		return nil
	}, 3)
	// Two workers pull four messages at a time: two in the handlers, and
	// the rest waiting to be handed out or in the iterator's buffer.
	r.Workers = 2
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var received int
	testkit.Eventually(t, "four messages delivered to the runner", 10*time.Second, func() bool {
		received = f.info(t).NumAckPending
		return received >= 4 && calls.Load() == 2
	})
	// What is delivered now has reached the runner, some of it no handler.
	time.Sleep(100 * time.Millisecond)
	received = f.info(t).NumAckPending
	cancel()
	time.Sleep(100 * time.Millisecond)
	close(release)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if n := calls.Load(); n < int32(received) {
		t.Errorf("handled %d messages, want the %d received before the cancel", n, received)
	}
	testkit.Eventually(t, "no message left unacknowledged", 5*time.Second, func() bool {
		return f.info(t).NumAckPending == 0
	})
}

// A handler that uses up its whole HandleTimeout on its last delivery must
// still be dead-lettered: the dead letter cannot share the spent context.
func TestRunnerDeadLettersAfterHandlerTimeout(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2)
	var calls atomic.Int32
	r := f.runner(func(ctx context.Context, _ jetstream.Msg) error {
		calls.Add(1)
		<-ctx.Done()
		return ctx.Err()
	}, 2)
	r.HandleTimeout = 200 * time.Millisecond
	start(t, r)
	f.publish(t, "t.slow", "w", nil)

	var dead []*jetstream.RawStreamMsg
	testkit.Eventually(t, "a dead letter", 10*time.Second, func() bool {
		dead = f.deadLetters(t)
		return len(dead) > 0
	})
	if got := dead[0].Header.Get(bus.HeaderDeadReason); !strings.HasSuffix(got, ": "+context.DeadlineExceeded.Error()) {
		t.Errorf("%s = %q, want it to end in %q", bus.HeaderDeadReason, got, context.DeadlineExceeded.Error())
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("handler called %d times, want 2", n)
	}
	testkit.Eventually(t, "the dead_lettered counter", 5*time.Second, func() bool { return handled(t, f.reg, "dead_lettered") == 1 })
}
