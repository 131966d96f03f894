package validator

import (
	"context"
	"sync"

	"golang.org/x/sync/errgroup"
)

// The work of one message fans out to reads and publishes that mostly wait
// on JetStream. What can run on the handler's own goroutine does: its
// stack has grown already, where each new goroutine's grows again through
// every decode on it (stack copying was a fifth of the validator's CPU
// per flip, most of it in goroutines that ran one task).

// together runs fns at once and returns the first error: the first on the
// calling goroutine, the others on goroutines of their own. An error
// cancels the context the others were given.
func together(ctx context.Context, fns ...func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	fail := func(err error) {
		if err != nil {
			once.Do(func() { first = err; cancel() })
		}
	}
	for _, fn := range fns[min(1, len(fns)):] {
		wg.Go(func() { fail(fn(ctx)) })
	}
	if len(fns) > 0 {
		fail(fns[0](ctx))
	}
	wg.Wait()
	return first
}

// forEach runs fn for every item, at most limit at once, and returns the
// first error; a single item runs on the calling goroutine.
func forEach[T any](ctx context.Context, items []T, limit int, fn func(context.Context, T) error) error {
	if len(items) == 1 {
		return fn(ctx, items[0])
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(limit)
	for _, it := range items {
		g.Go(func() error { return fn(gctx, it) })
	}
	return g.Wait()
}
