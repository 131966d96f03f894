package bus_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

// settleMsg is a delivered message that records how it was settled.
func settleMsg(delivered uint64, stored time.Time) *testkit.Msg {
	return &testkit.Msg{Subj: "t.member.jane-doe-42", Payload: []byte("x"), Stream: "T", Seq: 7, Delivered: delivered, Stored: stored}
}

type recordingPublisher struct {
	mu      sync.Mutex
	reasons []string
	fail    error
}

func (p *recordingPublisher) Publish(_ context.Context, _, _ string, _ []byte, h nats.Header) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		return p.fail
	}
	p.reasons = append(p.reasons, h.Get(bus.HeaderDeadReason))
	return nil
}

// The retry policy decides on an injected clock: a transient failure is
// retried until the message has had MaxAttempts deliveries and is older
// than the horizon, holds never give up, and Retry-After is a floor.
func TestSettlerRetryPolicy(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	policy := bus.RetryPolicy{MaxAttempts: 3, Horizon: 6 * time.Hour, Backoff: []time.Duration{time.Second, time.Minute}}
	transient := errors.New("dataverse 503")
	for _, tc := range []struct {
		name      string
		delivered uint64
		age       time.Duration
		err       error
		want      string
		delayMin  time.Duration
		delayMax  time.Duration
	}{
		{"success", 1, 0, nil, bus.OutcomeAcked, 0, 0},
		{"first failure backs off", 1, time.Second, transient, bus.OutcomeRetried, time.Second, time.Second},
		{"last backoff repeats", 40, time.Hour, transient, bus.OutcomeRetried, time.Minute, time.Minute},
		{"many deliveries inside the horizon", 500, 6*time.Hour - time.Second, transient, bus.OutcomeRetried, time.Minute, time.Minute},
		{"past the horizon with enough deliveries", 3, 6 * time.Hour, transient, bus.OutcomeDeadLettered, 0, 0},
		{"past the horizon, too few deliveries", 2, 7 * time.Hour, transient, bus.OutcomeRetried, time.Minute, time.Minute},
		{"permanent at once", 1, 0, bus.Permanent(errors.New("400")), bus.OutcomeDeadLettered, 0, 0},
		{"held past the horizon", 900, 30 * time.Hour, bus.Hold(errors.New("429"), 7*time.Second), bus.OutcomeHeld, 7 * time.Second, 7*time.Second + 7*time.Second/5},
		{"retry-after is a floor", 1, 0, bus.RetryAfter(transient, 30*time.Second), bus.OutcomeRetried, 30 * time.Second, 36 * time.Second},
		{"backoff above retry-after", 2, 0, bus.RetryAfter(transient, time.Second), bus.OutcomeRetried, time.Minute, time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub := &recordingPublisher{}
			s := &bus.Settler{Consumer: "c", Retry: policy, Publisher: pub, Metrics: bus.NewMetrics(prometheus.NewRegistry()),
				Now: func() time.Time { return now }, Jitter: func(d time.Duration) time.Duration { return d }}
			m := settleMsg(tc.delivered, now.Add(-tc.age))
			if got := s.Settle(context.Background(), m, tc.err).Outcome; got != tc.want {
				t.Fatalf("outcome %s, want %s", got, tc.want)
			}
			acks, naks, terms := m.Settled()
			switch tc.want {
			case bus.OutcomeAcked:
				if acks != 1 || len(naks)+len(terms) != 0 {
					t.Errorf("%v, want one ack", m)
				}
			case bus.OutcomeDeadLettered:
				if len(terms) != 1 || len(pub.reasons) != 1 || acks+len(naks) != 0 {
					t.Errorf("%v, dead letters %v, want one term and one dead letter", m, pub.reasons)
				}
			default:
				if len(naks) != 1 || acks+len(terms) != 0 {
					t.Fatalf("%v, want one nak", m)
				}
				if d := naks[0].Delay; d < tc.delayMin || d > tc.delayMax {
					t.Errorf("delay %s, want %s-%s", d, tc.delayMin, tc.delayMax)
				}
			}
		})
	}
}

// A dead letter that cannot be stored is not dropped: the message is
// redelivered.
func TestSettlerDeadLetterFailureRetries(t *testing.T) {
	t.Parallel()
	pub := &recordingPublisher{fail: errors.New("jetstream down")}
	s := &bus.Settler{Consumer: "c", Retry: fastRetry(2), Publisher: pub}
	m := settleMsg(1, time.Now())
	if got := s.Settle(context.Background(), m, bus.Permanent(errors.New("bad"))).Outcome; got != bus.OutcomeRetried {
		t.Fatalf("outcome %s, want retried", got)
	}
	if _, naks, terms := m.Settled(); len(naks) != 1 || len(terms) != 0 {
		t.Errorf("%v, want one nak and no term", m)
	}
}

func TestRetryPolicyValidate(t *testing.T) {
	t.Parallel()
	for _, p := range []bus.RetryPolicy{bus.ConsumerRetry(), bus.WriterRetry()} {
		if err := p.Validate(); err != nil {
			t.Errorf("%+v: %v", p, err)
		}
	}
	err := bus.RetryPolicy{MaxAttempts: 0, Horizon: -1, Backoff: []time.Duration{time.Second, 0}}.Validate()
	for _, want := range []string{"MaxAttempts", "Horizon", "Backoff[1]"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want it to name %s", err, want)
		}
	}
	if bus.WriterRetry().Span() < 6*time.Hour {
		t.Errorf("the writer's retry span %s is under the documented six hours", bus.WriterRetry().Span())
	}
	if bus.WriterRetry().MaxDeliver() != -1 || bus.ConsumerRetry().MaxDeliver() != 8+bus.DeadLetterAttempts {
		t.Error("MaxDeliver: want unbounded with a horizon, attempts and room to dead-letter without")
	}
}

// A dead letter drops the original publish's JetStream preconditions: a
// message published with Nats-Expected-Last-Subject-Sequence (as the
// validator publishes decisions) would otherwise be refused by the dead
// letter stream and retried forever.
func TestDeadLetterDropsPreconditions(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3)
	start(t, f.runner(func(context.Context, jetstream.Msg) error {
		return bus.Permanent(errors.New("dataverse 400"))
	}, 3))
	f.publish(t, "t.decision", "first", nil)
	h := nats.Header{}
	h.Set(jetstream.ExpectedLastSubjSeqHeader, "1")
	h.Set(jetstream.MsgIDHeader, "decision-2")
	h.Set("X-Kept", "yes")
	f.publish(t, "t.decision", "second", h)
	var dead []*jetstream.RawStreamMsg
	testkit.Eventually(t, "two dead letters", 10*time.Second, func() bool {
		dead = f.deadLetters(t)
		return len(dead) == 2
	})
	// Three workers: the dead letters may come in either order.
	second := dead[1]
	if string(second.Data) != "second" {
		second = dead[0]
	}
	if string(second.Data) != "second" || second.Header.Get("X-Kept") != "yes" {
		t.Errorf("dead letter %q with headers %v, want the second message with X-Kept", second.Data, second.Header)
	}
	for k := range second.Header {
		if strings.HasPrefix(strings.ToLower(k), "nats-expected") {
			t.Errorf("dead letter keeps %s", k)
		}
	}
	f.settled(t)
}

// A handler that panics does not stop the runner: the message is set aside
// with the panic as its reason, and the next one is handled.
func TestRunnerRecoversFromPanic(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3)
	start(t, f.runner(func(_ context.Context, m jetstream.Msg) error {
		if string(m.Data()) == "poison" {
			panic("handler bug")
		}
		return nil
	}, 3))
	f.publish(t, "t.a", "poison", nil)
	f.publish(t, "t.b", "fine", nil)
	f.settled(t)
	dead := f.deadLetters(t)
	if len(dead) != 1 || string(dead[0].Data) != "poison" || !strings.Contains(dead[0].Header.Get(bus.HeaderDeadReason), "handler panicked") {
		t.Fatalf("dead letters %v, want the poison one with the panic", dead)
	}
	testkit.Eventually(t, "the counters", 5*time.Second, func() bool {
		return handled(t, f.reg, bus.OutcomeAcked) == 1 && handled(t, f.reg, bus.OutcomeDeadLettered) == 1
	})
}

// In a batch, a panic sets aside only the message that causes it.
func TestBatchRunnerIsolatesPanic(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3)
	for _, d := range []string{"a", "poison", "b"} {
		f.publish(t, "t.batch", d, nil)
	}
	settler := &bus.Settler{Consumer: testConsumer, Retry: fastRetry(3), Publisher: f.pub, Metrics: f.metrics}
	var batches atomic.Int32
	r := &bus.BatchRunner{Name: testConsumer, Consumer: f.consumer, Settler: settler, Size: 3, Linger: time.Second,
		Handle: func(ctx context.Context, msgs []jetstream.Msg) {
			batches.Add(1)
			for _, m := range msgs {
				if string(m.Data()) == "poison" {
					panic("poisoned")
				}
				settler.Settle(ctx, m, nil)
			}
		}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	f.settled(t)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	dead := f.deadLetters(t)
	if len(dead) != 1 || string(dead[0].Data) != "poison" {
		t.Fatalf("dead letters %v, want only the poison one", dead)
	}
	if got := handled(t, f.reg, bus.OutcomeAcked); got != 2 {
		t.Errorf("acked %v, want 2", got)
	}
}

func TestRunnerValidates(t *testing.T) {
	t.Parallel()
	err := (&bus.Runner{Name: "x"}).Run(context.Background())
	for _, want := range []string{"Consumer", "handler", "Publisher"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Run = %v, want it to name %s", err, want)
		}
	}
}

// Without a HandleTimeout or Metrics, a runner uses defaults instead of an
// expired context or a nil pointer.
func TestRunnerDefaults(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 3)
	var live atomic.Bool
	r := &bus.Runner{Name: testConsumer, Consumer: f.consumer, Publisher: f.pub, Handler: func(ctx context.Context, _ jetstream.Msg) error {
		live.Store(ctx.Err() == nil)
		return ctx.Err()
	}}
	start(t, r)
	f.publish(t, "t.defaults", "x", nil)
	f.settled(t)
	if !live.Load() {
		t.Error("the handler got a spent context")
	}
}

// Logs never carry the last token of a subject (a member id on profile
// subjects), but the same token always reads the same in one process.
func TestLogSubjectHidesTheID(t *testing.T) {
	t.Parallel()
	s := &bus.Settler{Consumer: "c"}
	a, b := s.LogSubject("nac.profile.member.jane-doe-42"), s.LogSubject("nac.profile.member.jane-doe-42")
	if strings.Contains(a, "jane") || !strings.HasPrefix(a, "nac.profile.member.#") || a != b {
		t.Errorf("LogSubject = %q, %q: want the prefix, a stable hash and no id", a, b)
	}
	if s.LogSubject("nac.profile.member.john") == a {
		t.Error("two ids hash alike")
	}
}

// The slow-handling alert compares p99 with 5 s: the histogram must have a
// bucket bound at 5 s and above it, or the quantile can never pass 5 s.
func TestHandleDurationBucketsReachTheAlert(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	s := &bus.Settler{Consumer: "c", Retry: fastRetry(1), Publisher: &recordingPublisher{}, Metrics: bus.NewMetrics(reg)}
	s.Observe(7*time.Second, 1)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var bounds []float64
	for _, mf := range mfs {
		if mf.GetName() == "nac_message_handle_duration_seconds" {
			for _, b := range mf.GetMetric()[0].GetHistogram().GetBucket() {
				bounds = append(bounds, b.GetUpperBound())
			}
		}
	}
	if !slices.Contains(bounds, 5) || slices.Max(bounds) <= 5 {
		t.Errorf("bucket bounds %v: want 5 s and more", bounds)
	}
}
