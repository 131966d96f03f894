package validator

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestTogether(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	var ran atomic.Int32
	ok := func(context.Context) error { ran.Add(1); return nil }
	if err := together(context.Background(), ok, ok, ok); err != nil || ran.Load() != 3 {
		t.Fatalf("all fine: %v, %d ran, want nil and 3", err, ran.Load())
	}
	// The first error is returned, and it cancels the others' context,
	// whichever of them (the inline one or a goroutine's) failed.
	waits := func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Second):
			return errors.New("not cancelled")
		}
	}
	fails := func(context.Context) error { return boom }
	for name, fns := range map[string][]func(context.Context) error{
		"inline fails":    {fails, waits},
		"goroutine fails": {waits, fails},
	} {
		if err := together(context.Background(), fns...); !errors.Is(err, boom) {
			t.Errorf("%s: %v, want boom", name, err)
		}
	}
	if err := together(context.Background()); err != nil {
		t.Errorf("nothing to run: %v", err)
	}
}

func TestForEach(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	for _, n := range []int{0, 1, 5} {
		var sum atomic.Int32
		items := make([]int, n)
		for i := range items {
			items[i] = i + 1
		}
		if err := forEach(context.Background(), items, 2, func(_ context.Context, i int) error { sum.Add(int32(i)); return nil }); err != nil {
			t.Fatal(err)
		}
		if want := int32(n * (n + 1) / 2); sum.Load() != want {
			t.Errorf("%d items: sum %d, want %d", n, sum.Load(), want)
		}
		err := forEach(context.Background(), items, 2, func(_ context.Context, i int) error {
			if i == n {
				return boom
			}
			return nil
		})
		if n > 0 && !errors.Is(err, boom) {
			t.Errorf("%d items: %v, want boom", n, err)
		}
	}
}
