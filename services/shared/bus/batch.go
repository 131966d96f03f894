package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// BatchRunner pulls from one durable consumer and hands messages to Handle
// in batches of up to Size messages. A batch goes to the first free worker
// at once when nothing else is pending on the consumer (a lone message is
// never held back); while more are pending, or its first message is a
// redelivery (those come back in waves after a wait), it waits at most
// Linger after its first message to fill; and while every worker is busy
// it keeps filling. So batches form under load only. Handle settles every message
// through Settler.
// Workers batches are handled at once. A Handle that panics does not stop
// the runner: the messages it left unsettled are handled again one by one,
// and one that panics on its own is set aside with the panic as reason.
type BatchRunner struct {
	Name     string
	Consumer jetstream.Consumer
	Handle   func(ctx context.Context, msgs []jetstream.Msg)
	Settler  *Settler
	Size     int           // default 1
	Linger   time.Duration // default 0: a batch is what is at hand when a worker is free
	Workers  int           // default 1
	// HandleTimeout bounds one Handle call (default 25 s); keep it under
	// the AckWait.
	HandleTimeout time.Duration
	Logger        *slog.Logger // nil: no logs
	// LagEvery is how often the consumer's backlog is read into the
	// metrics (default 15 s).
	LagEvery time.Duration

	// taken, when set (by the tests, which cannot see a batch filling
	// otherwise), is told the size of the batch being filled as it grows.
	taken func(n int)
}

// DefaultHandleTimeout is a runner's handle timeout when none is set:
// under the topology's 30 s ack wait.
const DefaultHandleTimeout = 25 * time.Second

func (r *BatchRunner) validate() error {
	var errs []error
	if r.Name == "" {
		errs = append(errs, errors.New("runner: Name: required"))
	}
	if r.Consumer == nil {
		errs = append(errs, fmt.Errorf("runner %s: Consumer: required", r.Name))
	}
	if r.Handle == nil {
		errs = append(errs, fmt.Errorf("runner %s: handler: required", r.Name))
	}
	if r.Settler == nil {
		errs = append(errs, fmt.Errorf("runner %s: Settler: required", r.Name))
	} else if err := r.Settler.Validate(); err != nil {
		errs = append(errs, err)
	}
	if r.Size < 0 || r.Workers < 0 || r.Linger < 0 || r.HandleTimeout < 0 {
		errs = append(errs, fmt.Errorf("runner %s: Size, Workers, Linger and HandleTimeout must not be negative", r.Name))
	}
	return errors.Join(errs...)
}

// Run consumes until ctx is done, then stops pulling, hands out what was
// already received and waits for every batch to be handled. It fails at
// once on a missing part.
func (r *BatchRunner) Run(ctx context.Context) error {
	if err := r.validate(); err != nil {
		return err
	}
	size, workers := max(r.Size, 1), max(r.Workers, 1)
	timeout := r.HandleTimeout
	if timeout == 0 {
		timeout = DefaultHandleTimeout
	}
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	iter, err := r.Consumer.Messages(jetstream.PullMaxMessages(2 * size * workers))
	if err != nil {
		return fmt.Errorf("consume %s: %w", r.Name, err)
	}
	stopped := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			// No more pulls, but what is buffered is still handed out.
			iter.Drain()
		case <-stopped:
		}
	}()
	go r.watchLag(ctx, stopped)
	batches := make(chan []jetstream.Msg)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				r.handle(b, timeout, log)
			}
		}()
	}
	// The iterator blocks; a pump turns it into a channel the batching can
	// wait on beside a free worker.
	in := make(chan jetstream.Msg)
	var runErr error
	go func() {
		defer close(in)
		for {
			m, err := iter.Next()
			if err != nil {
				if !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
					runErr = fmt.Errorf("consume %s: %w", r.Name, err)
					iter.Stop()
				}
				return
			}
			in <- m
		}
	}()
	for first := range in {
		if batch, handed := r.fill(first, in, batches, size); !handed {
			batches <- batch
		}
	}
	close(batches)
	close(stopped)
	wg.Wait()
	return runErr
}

// fill makes a batch starting with first, taking what arrives on in, and
// hands it to a free worker as soon as nothing else is pending (or Linger
// has passed since first); until a worker is free it keeps taking more. A
// batch that filled up (or the end of in) is returned for the caller to
// hand over, with handed false.
func (r *BatchRunner) fill(first jetstream.Msg, in <-chan jetstream.Msg, batches chan<- []jetstream.Msg, size int) (batch []jetstream.Msg, handed bool) {
	batch = []jetstream.Msg{first}
	r.took(batch)
	// More is pending on the consumer, or first is back after a wait
	// (redeliveries come in waves, unseen by the consumer's pending
	// count): worth lingering for, up to Linger.
	var linger <-chan time.Time
	if r.Linger > 0 && worthLingering(first) {
		t := time.NewTimer(r.Linger)
		defer t.Stop()
		linger = t.C
	}
	for len(batch) < size {
		if linger != nil {
			select {
			case m, ok := <-in:
				if !ok {
					return batch, false
				}
				batch = append(batch, m)
				r.took(batch)
				if !worthLingering(m) {
					linger = nil // nothing more to wait for
				}
			case <-linger:
				linger = nil
			}
			continue
		}
		// Hand it to a free worker now, or take more while none is.
		select {
		case batches <- batch:
			return batch, true
		case m, ok := <-in:
			if !ok {
				return batch, false
			}
			batch = append(batch, m)
			r.took(batch)
		}
	}
	return batch, false
}

func (r *BatchRunner) took(batch []jetstream.Msg) {
	if r.taken != nil {
		r.taken(len(batch))
	}
}

// worthLingering reports whether more messages are likely to follow m at
// once: the consumer held more beyond m when m was delivered, or m is a
// redelivery.
func worthLingering(m jetstream.Msg) bool {
	meta, err := m.Metadata()
	return err == nil && (meta.NumPending > 0 || meta.NumDelivered > 1)
}

// watchLag reads the consumer's backlog into the metrics until stopped.
func (r *BatchRunner) watchLag(ctx context.Context, stopped <-chan struct{}) {
	every := r.LagEvery
	if every <= 0 {
		every = 15 * time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
		info, err := r.Consumer.Info(ictx)
		cancel()
		if err == nil {
			r.Settler.defaults()
			r.Settler.Metrics.ObserveConsumer(r.Name, info)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		case <-stopped:
			return
		}
	}
}

// handle runs Handle on one batch. In-flight work finishes even when
// shutdown has begun, so the handler's context is not the run context.
func (r *BatchRunner) handle(msgs []jetstream.Msg, timeout time.Duration, log *slog.Logger) {
	tracked := make([]jetstream.Msg, len(msgs))
	for i, m := range msgs {
		tracked[i] = &trackedMsg{Msg: m}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	panicked := r.protect(ctx, tracked)
	r.Settler.Observe(time.Since(start), len(msgs))
	var left []jetstream.Msg
	for _, m := range tracked {
		if !m.(*trackedMsg).settled.Load() {
			left = append(left, m)
		}
	}
	switch {
	case len(left) == 0:
	case panicked != nil && len(tracked) == 1:
		r.Settler.Settle(ctx, left[0], Permanent(fmt.Errorf("handler panicked: %v", panicked)))
	case panicked != nil:
		log.Error("handler panicked; handling the batch's messages one by one", "consumer", r.Name, "panic", fmt.Sprint(panicked), "messages", len(left))
		for _, m := range left {
			r.handle([]jetstream.Msg{m.(*trackedMsg).Msg}, timeout, log)
		}
	default:
		// A handler bug, not the message's: it comes back after the backoff.
		log.Error("handler left messages unsettled; retrying them", "consumer", r.Name, "messages", len(left))
		for _, m := range left {
			r.Settler.Settle(ctx, m, errors.New("handler left the message unsettled"))
		}
	}
}

// protect runs Handle and returns what it panicked with, if it did.
func (r *BatchRunner) protect(ctx context.Context, msgs []jetstream.Msg) (panicked any) {
	defer func() { panicked = recover() }()
	r.Handle(ctx, msgs)
	return nil
}

// trackedMsg records whether a message was settled.
type trackedMsg struct {
	jetstream.Msg
	settled atomic.Bool
}

func (m *trackedMsg) settle(err error) error { m.settled.Store(true); return err }

func (m *trackedMsg) Ack() error                          { return m.settle(m.Msg.Ack()) }
func (m *trackedMsg) DoubleAck(ctx context.Context) error { return m.settle(m.Msg.DoubleAck(ctx)) }
func (m *trackedMsg) Nak() error                          { return m.settle(m.Msg.Nak()) }
func (m *trackedMsg) NakWithDelay(d time.Duration) error  { return m.settle(m.Msg.NakWithDelay(d)) }
func (m *trackedMsg) Term() error                         { return m.settle(m.Msg.Term()) }
func (m *trackedMsg) TermWithReason(reason string) error {
	return m.settle(m.Msg.TermWithReason(reason))
}
