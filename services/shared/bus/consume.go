package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// permanentError marks a failure that retrying cannot fix.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as permanent: the message is set aside in the dead
// letter stream with err as its reason and never retried. Every other error
// from a Handler is transient and retried with backoff.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err: err}
}

// IsPermanent reports whether err was marked by Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// Handler applies one message. It returns nil once the message's effect is
// durable; the message is acknowledged only then.
type Handler func(ctx context.Context, msg jetstream.Msg) error

// Metrics are the consumer-side metrics shared by every consumer of a service.
type Metrics struct {
	handled  *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics registers consumer metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nac_messages_handled_total",
			Help: "JetStream messages handled, by consumer and outcome (acked, retried, dead_lettered).",
		}, []string{"consumer", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nac_message_handle_duration_seconds",
			Help:    "Time to handle one JetStream message, by consumer.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"consumer"}),
	}
	reg.MustRegister(m.handled, m.duration)
	return m
}

// RawPublisher stores raw data; *Publisher is one.
type RawPublisher interface {
	Publish(ctx context.Context, subject, msgID string, data []byte, header nats.Header) error
}

// Headers on a dead-lettered message, beside the original headers.
const (
	HeaderDeadReason     = "Nac-Dead-Reason"
	HeaderDeadStream     = "Nac-Dead-Stream"
	HeaderDeadSubject    = "Nac-Dead-Subject"
	HeaderDeadSequence   = "Nac-Dead-Sequence"
	HeaderDeadDeliveries = "Nac-Dead-Deliveries"
)

// Runner pulls from one durable consumer and hands each message to Handler
// on a few workers.
type Runner struct {
	Name       string // consumer name, for logs and metrics
	Consumer   jetstream.Consumer
	Handler    Handler
	Publisher  *Publisher // for dead letters
	Workers    int
	MaxDeliver int
	// HandleTimeout bounds one Handler call; keep it under the AckWait.
	HandleTimeout time.Duration
	Logger        *slog.Logger
	Metrics       *Metrics
}

// Run consumes until ctx is done, then stops pulling, finishes every message
// already received and returns.
func (r *Runner) Run(ctx context.Context) error {
	// One message at a time per worker: a batch runner with batches of one.
	batches := &BatchRunner{
		Name: r.Name, Consumer: r.Consumer, Size: 1, Workers: r.Workers,
		HandleTimeout: r.HandleTimeout, Logger: r.Logger,
		Handle: func(ctx context.Context, msgs []jetstream.Msg) { r.handle(ctx, msgs[0]) },
	}
	return batches.Run(ctx)
}

// handle runs the handler and settles m. ctx is not the run context: work
// in flight finishes even when shutdown has begun.
func (r *Runner) handle(ctx context.Context, m jetstream.Msg) {
	start := time.Now()
	err := r.Handler(ctx, m)
	r.Metrics.duration.WithLabelValues(r.Name).Observe(time.Since(start).Seconds())

	var delivered uint64 = 1
	meta, metaErr := m.Metadata()
	if metaErr == nil {
		delivered = meta.NumDelivered
	}
	log := r.Logger.With("consumer", r.Name, "subject", m.Subject(), "deliveries", delivered)
	switch {
	case err == nil:
		if ackErr := m.Ack(); ackErr != nil {
			log.Warn("ack failed; the message will be redelivered", "err", ackErr)
		}
		r.Metrics.handled.WithLabelValues(r.Name, "acked").Inc()
	case IsPermanent(err) || int(delivered) >= r.MaxDeliver:
		reason := err.Error()
		// The handler may have used up ctx (a timeout is a failure like any
		// other); the dead letter gets its own time, bounded by the publisher.
		if dlErr := r.deadLetter(context.WithoutCancel(ctx), m, meta, reason); dlErr != nil {
			// Not set aside, so not dropped either: try again later.
			log.Error("dead letter failed; retrying the message", "err", dlErr, "reason", reason)
			_ = m.NakWithDelay(BackoffFor(delivered))
			r.Metrics.handled.WithLabelValues(r.Name, "retried").Inc()
			return
		}
		log.Error("message set aside in the dead letter stream", "reason", reason)
		_ = m.TermWithReason(truncate(reason, 200))
		r.Metrics.handled.WithLabelValues(r.Name, "dead_lettered").Inc()
	default:
		delay := Jitter(BackoffFor(delivered))
		log.Warn("transient failure; retrying", "err", err, "delay", delay)
		_ = m.NakWithDelay(delay)
		r.Metrics.handled.WithLabelValues(r.Name, "retried").Inc()
	}
}

func (r *Runner) deadLetter(ctx context.Context, m jetstream.Msg, meta *jetstream.MsgMetadata, reason string) error {
	return DeadLetter(ctx, r.Publisher, r.Name, m, meta, reason)
}

// DeadLetter sets m aside on the dead letter subject of consumer, with the
// reason and where it came from in Nac-Dead-* headers and its original
// headers and data. meta may be nil. Deduplicated per stream sequence, so a
// repeated attempt stores it once.
func DeadLetter(ctx context.Context, pub RawPublisher, consumer string, m jetstream.Msg, meta *jetstream.MsgMetadata, reason string) error {
	h := nats.Header{}
	for k, v := range m.Headers() {
		h[k] = v
	}
	h.Set(HeaderDeadReason, reason)
	h.Set(HeaderDeadSubject, m.Subject())
	msgID := ""
	if meta != nil {
		h.Set(HeaderDeadStream, meta.Stream)
		h.Set(HeaderDeadSequence, strconv.FormatUint(meta.Sequence.Stream, 10))
		h.Set(HeaderDeadDeliveries, strconv.FormatUint(meta.NumDelivered, 10))
		msgID = fmt.Sprintf("%s-%d", meta.Stream, meta.Sequence.Stream)
	}
	h.Del(nats.MsgIdHdr)
	return pub.Publish(ctx, DeadLetterSubject(consumer), msgID, m.Data(), h)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
