package writer

import (
	"context"
	"errors"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// Throttle keeps one organization's writes inside its budget: a request
// rate that never exceeds Requests in any Window, at most Concurrent
// operations at once, and a full stop until the moment a 429 named.
type Throttle struct {
	budget     Spender             // nil: no request budget
	sem        *semaphore.Weighted // nil: no concurrency limit
	concurrent int64

	mu           sync.Mutex
	blockedUntil time.Time
}

// NewThrottle returns a throttle for budget b in this process alone;
// batch is the largest number of operations acquired at once.
func NewThrottle(b Budget, batch int) *Throttle {
	if b.Off {
		return &Throttle{}
	}
	return NewSharedThrottle(b, newLocalSpender(b, batch))
}

// NewSharedThrottle returns a throttle for budget b that spends its
// requests from spender, which other replicas may share.
func NewSharedThrottle(b Budget, spender Spender) *Throttle {
	if b.Off {
		return &Throttle{}
	}
	return &Throttle{budget: spender, sem: semaphore.NewWeighted(int64(b.Concurrent)), concurrent: int64(b.Concurrent)}
}

// ErrBlocked means the organization is paused after a 429.
var ErrBlocked = errors.New("organization throttled by Dataverse")

// Blocked returns how long the organization stays paused, or 0.
func (t *Throttle) Blocked() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return max(0, time.Until(t.blockedUntil))
}

// Block pauses the organization for d (a 429's Retry-After).
func (t *Throttle) Block(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if until := time.Now().Add(d); until.After(t.blockedUntil) {
		t.blockedUntil = until
	}
}

// Acquire waits until n operations may be sent and returns how long it
// waited and the release to call when they are answered.
func (t *Throttle) Acquire(ctx context.Context, n int) (release func(), waited time.Duration, err error) {
	if d := t.Blocked(); d > 0 {
		return nil, 0, ErrBlocked
	}
	start := time.Now()
	if t.budget != nil {
		if err := t.budget.Take(ctx, n); err != nil {
			return nil, time.Since(start), err
		}
	}
	release = func() {}
	if t.sem != nil {
		w := min(int64(n), t.concurrent)
		if err := t.sem.Acquire(ctx, w); err != nil {
			return nil, time.Since(start), err
		}
		release = func() { t.sem.Release(w) }
	}
	return release, time.Since(start), nil
}

// Observe adapts to what Dataverse said: a 429 pauses the organization,
// and fewer requests left than the local budget holds drains the budget to
// match, so that the server's count, not ours, is the one respected.
func (t *Throttle) Observe(rl dataverse.RateLimit) {
	if rl.RetryAfter > 0 {
		t.Block(rl.RetryAfter)
	}
	if t.budget == nil || rl.BurstRemaining < 0 {
		return
	}
	t.budget.Drain(rl.BurstRemaining)
}
