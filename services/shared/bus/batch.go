package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// BatchRunner pulls from one durable consumer and hands messages to Handle
// in batches: up to Size messages, waiting at most Linger after the first
// for the batch to fill. Handle settles every message itself (ack, nak or
// term). Workers batches are handled at once.
type BatchRunner struct {
	Name     string
	Consumer jetstream.Consumer
	Handle   func(ctx context.Context, msgs []jetstream.Msg)
	Size     int
	Linger   time.Duration
	Workers  int
	// HandleTimeout bounds one Handle call; keep it under the AckWait.
	HandleTimeout time.Duration
	Logger        *slog.Logger
}

// Run consumes until ctx is done, then stops pulling, hands out what was
// already received and waits for every batch to be handled.
func (r *BatchRunner) Run(ctx context.Context) error {
	size, workers := max(r.Size, 1), max(r.Workers, 1)
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
	batches := make(chan []jetstream.Msg)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				// In-flight work finishes even when shutdown has begun, so
				// the handler's context is not the run context.
				hctx, cancel := context.WithTimeout(context.Background(), r.HandleTimeout)
				r.Handle(hctx, b)
				cancel()
			}
		}()
	}
	var runErr error
	for {
		first, err := iter.Next()
		if err != nil {
			if !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				runErr = fmt.Errorf("consume %s: %w", r.Name, err)
				iter.Stop()
			}
			break
		}
		batch := []jetstream.Msg{first}
		deadline := time.Now().Add(r.Linger)
		for len(batch) < size {
			wait := time.Until(deadline)
			if wait <= 0 {
				break
			}
			m, err := iter.Next(jetstream.NextMaxWait(wait))
			if err != nil {
				break // lingered long enough, or closed: the outer Next tells
			}
			batch = append(batch, m)
		}
		batches <- batch
	}
	close(batches)
	close(stopped)
	wg.Wait()
	return runErr
}
