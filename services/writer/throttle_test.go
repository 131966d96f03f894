package writer

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// acquire calls Acquire and fails the test on an error.
func acquire(t *testing.T, th *Throttle, n int) (release func(), waited time.Duration) {
	t.Helper()
	release, waited, err := th.Acquire(t.Context(), n)
	if err != nil {
		t.Fatalf("Acquire(%d) = %v", n, err)
	}
	return release, waited
}

func TestThrottleBurstThenWaits(t *testing.T) {
	t.Parallel()
	// Burst 10, then (100-10)/10s = 9 operations a second.
	th := NewThrottle(Budget{Requests: 100, Window: 10 * time.Second, Concurrent: 5}, 10)
	release, waited := acquire(t, th, 10)
	release()
	if waited > 50*time.Millisecond {
		t.Errorf("the first batch waited %s; the burst should let it go at once", waited)
	}
	// The burst is spent: the next batch is ~1.1s away, more than a short
	// deadline allows.
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, _, err := th.Acquire(ctx, 10); err == nil || errors.Is(err, ErrBlocked) {
		t.Errorf("Acquire with the burst spent and a 200ms deadline = %v, want a budget error", err)
	}
	release, waited = acquire(t, th, 10)
	release()
	if want := 10 * time.Second / 9; waited < want*8/10 || waited > want*2 {
		t.Errorf("the second batch waited %s, want about %s", waited, want)
	}
}

// TestThrottleRateWithinBudget: no window ever holds more operations than
// the budget allows, the burst included.
func TestThrottleRateWithinBudget(t *testing.T) {
	t.Parallel()
	const requests, window, run = 40, time.Second, 2500 * time.Millisecond
	th := NewThrottle(Budget{Requests: requests, Window: window, Concurrent: 1000}, 5)
	type op struct {
		at time.Time
		n  int
	}
	var (
		mu  sync.Mutex
		ops []op
		wg  sync.WaitGroup
	)
	start := time.Now()
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Since(start) < run; i++ {
				n := 1 + (w+i)%5
				ctx, cancel := context.WithDeadline(t.Context(), start.Add(run))
				release, _, err := th.Acquire(ctx, n)
				cancel()
				if err != nil {
					return // the wait would outlast the run
				}
				release()
				mu.Lock()
				ops = append(ops, op{time.Now(), n})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sort.Slice(ops, func(i, j int) bool { return ops[i].at.Before(ops[j].at) })
	total := 0
	// The most in any window starts at an operation; a little less than a
	// window leaves room for goroutines returning late from their wait.
	span := window * 95 / 100
	for i := range ops {
		total += ops[i].n
		sum := 0
		for j := i; j < len(ops) && ops[j].at.Sub(ops[i].at) < span; j++ {
			sum += ops[j].n
		}
		if sum > requests {
			t.Fatalf("%d operations within %s from %s, budget %d per %s", sum, span, ops[i].at.Sub(start), requests, window)
		}
	}
	// And the budget is used: burst 5 plus 35/s.
	if want := 5 + 35*run.Seconds()*0.75; float64(total) < want {
		t.Errorf("%d operations in %s, want at least %.0f", total, run, want)
	}
}

func TestThrottleConcurrency(t *testing.T) {
	t.Parallel()
	th := NewThrottle(Budget{Requests: 100, Window: 10 * time.Second, Concurrent: 5}, 10)
	release, _ := acquire(t, th, 5)
	got := make(chan func(), 1)
	go func() {
		r, _, err := th.Acquire(context.Background(), 1)
		if err != nil {
			t.Errorf("Acquire(1) = %v", err)
			r = func() {}
		}
		got <- r
	}()
	select {
	case r := <-got:
		r()
		t.Fatal("a sixth operation went while five were in flight")
	case <-time.After(150 * time.Millisecond):
	}
	release()
	select {
	case r := <-got:
		r()
	case <-time.After(2 * time.Second):
		t.Fatal("the waiting operation did not go after the release")
	}

	// A batch larger than Concurrent still goes, holding all of it.
	th = NewThrottle(Budget{Requests: 1000, Window: 10 * time.Second, Concurrent: 5}, 10)
	release, _ = acquire(t, th, 10)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, _, err := th.Acquire(ctx, 1); err == nil {
		t.Error("an operation went beside a batch holding every slot")
	}
	release()
	r, _ := acquire(t, th, 1)
	r()
}

func TestThrottleBlock(t *testing.T) {
	t.Parallel()
	th := NewThrottle(Budget{Requests: 100, Window: 10 * time.Second, Concurrent: 5}, 10)
	if b := th.Blocked(); b != 0 {
		t.Fatalf("a new throttle is blocked for %s", b)
	}
	th.Block(300 * time.Millisecond)
	th.Block(10 * time.Millisecond) // a shorter pause does not cut the longer one
	if b := th.Blocked(); b <= 200*time.Millisecond || b > 300*time.Millisecond {
		t.Errorf("Blocked() = %s, want up to 300ms", b)
	}
	if _, _, err := th.Acquire(t.Context(), 1); !errors.Is(err, ErrBlocked) {
		t.Errorf("Acquire while blocked = %v, want ErrBlocked", err)
	}
	time.Sleep(th.Blocked() + 10*time.Millisecond)
	if b := th.Blocked(); b != 0 {
		t.Errorf("still blocked for %s", b)
	}
	release, _ := acquire(t, th, 10) // the failed Acquire took nothing
	release()
}

func TestThrottleObserve(t *testing.T) {
	t.Parallel()
	th := NewThrottle(Budget{Requests: 100, Window: 10 * time.Second, Concurrent: 5}, 10)
	// No headers: nothing changes.
	th.Observe(dataverse.RateLimit{BurstRemaining: -1})
	release, waited := acquire(t, th, 1)
	release()
	if waited > 50*time.Millisecond {
		t.Errorf("waited %s with the budget nearly full", waited)
	}
	// More left on the server than here: nothing changes.
	th.Observe(dataverse.RateLimit{BurstRemaining: 5000})
	release, waited = acquire(t, th, 1)
	release()
	if waited > 50*time.Millisecond {
		t.Errorf("waited %s with the budget nearly full", waited)
	}
	// The server has nothing left: the budget is drained to match, so the
	// next operation waits for the rate (1/9 s).
	th.Observe(dataverse.RateLimit{BurstRemaining: 0})
	release, waited = acquire(t, th, 1)
	release()
	if waited < 30*time.Millisecond {
		t.Errorf("waited %s after the server said nothing is left, want up to 110ms", waited)
	}
	if b := th.Blocked(); b != 0 {
		t.Errorf("blocked for %s without a 429", b)
	}
	// A 429 pauses.
	th.Observe(dataverse.RateLimit{BurstRemaining: -1, RetryAfter: time.Second})
	if b := th.Blocked(); b <= 900*time.Millisecond {
		t.Errorf("Blocked() = %s after a 429 with Retry-After 1s", b)
	}
	if _, _, err := th.Acquire(t.Context(), 1); !errors.Is(err, ErrBlocked) {
		t.Errorf("Acquire after a 429 = %v, want ErrBlocked", err)
	}
}

func TestThrottleOff(t *testing.T) {
	t.Parallel()
	th := NewThrottle(Budget{Off: true}, 10)
	start := time.Now()
	for range 1000 {
		release, waited, err := th.Acquire(t.Context(), 1000)
		if err != nil || waited > 10*time.Millisecond {
			t.Fatalf("Acquire = %v after %s, want at once", err, waited)
		}
		release() // a no-op, but callable
	}
	th.Observe(dataverse.RateLimit{BurstRemaining: 0})
	if _, waited := acquire(t, th, 1000); waited > 10*time.Millisecond {
		t.Errorf("waited %s after Observe with the budget off", waited)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("1000 acquisitions took %s", d)
	}
	// A 429 is still respected.
	th.Block(time.Minute)
	if _, _, err := th.Acquire(t.Context(), 1); !errors.Is(err, ErrBlocked) {
		t.Errorf("Acquire after Block with the budget off = %v, want ErrBlocked", err)
	}
}
