package bus

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Handler applies one message. It returns nil once the message's effect is
// durable; the message is acknowledged only then. Its error settles the
// message (see Permanent, Hold, RetryAfter).
type Handler func(ctx context.Context, msg jetstream.Msg) error

// Runner pulls from one durable consumer and hands each message to Handler
// on a few workers; the Settler settles it with Handler's error.
type Runner struct {
	Name      string // consumer name, for logs and metrics
	Consumer  jetstream.Consumer
	Handler   Handler
	Publisher RawPublisher // for dead letters
	// Retry is the consumer's retry policy; zero: the topology's default
	// for Name (DefaultOptions().RetryFor).
	Retry   RetryPolicy
	Workers int // default 1
	// HandleTimeout bounds one Handler call (default 25 s); keep it under
	// the AckWait.
	HandleTimeout time.Duration
	Logger        *slog.Logger // nil: no logs
	Metrics       *Metrics     // nil: unregistered metrics
}

// Run consumes until ctx is done, then stops pulling, finishes every message
// already received and returns. It fails at once on a missing part.
func (r *Runner) Run(ctx context.Context) error {
	retry := r.Retry
	if retry.MaxAttempts == 0 && len(retry.Backoff) == 0 {
		retry = DefaultOptions().RetryFor(r.Name)
	}
	settler := &Settler{Consumer: r.Name, Retry: retry, Publisher: r.Publisher, Metrics: r.Metrics, Logger: r.Logger}
	handler := r.Handler
	// One message at a time per worker: a batch runner with batches of one.
	batches := &BatchRunner{
		Name: r.Name, Consumer: r.Consumer, Size: 1, Workers: r.Workers,
		HandleTimeout: r.HandleTimeout, Logger: r.Logger, Settler: settler,
		Handle: func(ctx context.Context, msgs []jetstream.Msg) {
			settler.Settle(ctx, msgs[0], handler(ctx, msgs[0]))
		},
	}
	if handler == nil {
		batches.Handle = nil // reported by the batch runner's validation
	}
	return batches.Run(ctx)
}
