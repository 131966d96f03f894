package writer

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

func TestThrottleBlock(t *testing.T) {
	t.Parallel()
	th := NewThrottle(Budget{Requests: 100, ExecutionTime: time.Minute, Window: 10 * time.Second, Concurrent: 5})
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
	release, _, err := th.Acquire(t.Context(), 10) // the failed Acquire took nothing
	if err != nil {
		t.Fatal(err)
	}
	release()
}

func TestThrottleObserve(t *testing.T) {
	t.Parallel()
	th := NewThrottle(Budget{Requests: 100, ExecutionTime: time.Minute, Window: 10 * time.Second, Concurrent: 5})
	for _, rl := range []dataverse.RateLimit{
		{BurstRemaining: -1, TimeRemaining: -1},                       // no headers: nothing changes
		{BurstRemaining: 5000, TimeRemaining: time.Hour, DOPHint: 52}, // more left on the server than here
	} {
		th.Observe(rl)
		release, waited, err := th.Acquire(t.Context(), 1)
		if err != nil || waited > time.Second {
			t.Fatalf("after %+v: Acquire = %v after %s, want at once", rl, err, waited)
		}
		release()
	}
	// The server has no time left: the next request waits for the window.
	th.Observe(dataverse.RateLimit{BurstRemaining: -1, TimeRemaining: 0})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	var be *BudgetError
	if _, _, err := th.Acquire(ctx, 1); !errors.As(err, &be) || be.Limit != limitExecutionTime || be.Wait < 5*time.Second {
		t.Errorf("Acquire after the server said no time is left = %v, want an execution time wait for the window", err)
	}
	if b := th.Blocked(); b != 0 {
		t.Errorf("blocked for %s without a 429", b)
	}
	// A 429 pauses.
	th.Observe(dataverse.RateLimit{BurstRemaining: -1, TimeRemaining: -1, RetryAfter: time.Second})
	if b := th.Blocked(); b <= 900*time.Millisecond {
		t.Errorf("Blocked() = %s after a 429 with Retry-After 1s", b)
	}
	if _, _, err := th.Acquire(t.Context(), 1); !errors.Is(err, ErrBlocked) {
		t.Errorf("Acquire after a 429 = %v, want ErrBlocked", err)
	}
}

func TestThrottleOff(t *testing.T) {
	t.Parallel()
	th := NewThrottle(Budget{Off: true})
	start := time.Now()
	for range 1000 {
		release, waited, err := th.Acquire(t.Context(), 1000)
		if err != nil || waited > 10*time.Millisecond {
			t.Fatalf("Acquire = %v after %s, want at once", err, waited)
		}
		release() // a no-op, but callable
	}
	th.Observe(dataverse.RateLimit{BurstRemaining: 0, TimeRemaining: 0})
	if _, waited, _ := th.Acquire(t.Context(), 1000); waited > 10*time.Millisecond {
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
