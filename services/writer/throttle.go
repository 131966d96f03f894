package writer

import (
	"context"
	"sync"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// Throttle keeps one organization's requests inside its budget (a Ledger:
// Dataverse's three service protection limits, shared by the replicas)
// and stops them until the moment a 429 named.
type Throttle struct {
	ledger *Ledger // nil: no budget

	mu           sync.Mutex
	blockedUntil time.Time // a 429 pauses even with the budget off
}

// NewThrottle returns a throttle for budget b in this process alone.
func NewThrottle(b Budget) *Throttle {
	if b.Off {
		return &Throttle{}
	}
	return NewSharedThrottle(b, NewLocalLedger(b))
}

// NewSharedThrottle returns a throttle for budget b kept in ledger, which
// other replicas may share.
func NewSharedThrottle(b Budget, ledger *Ledger) *Throttle {
	if b.Off {
		return &Throttle{}
	}
	return &Throttle{ledger: ledger}
}

// Blocked returns how long the organization stays paused, or 0.
func (t *Throttle) Blocked() time.Duration {
	t.mu.Lock()
	d := max(0, time.Until(t.blockedUntil))
	t.mu.Unlock()
	if t.ledger != nil {
		d = max(d, t.ledger.Paused())
	}
	return d
}

// Block pauses the organization for d (a 429's Retry-After), in every
// replica sharing the budget.
func (t *Throttle) Block(d time.Duration) {
	t.mu.Lock()
	if until := time.Now().Add(d); until.After(t.blockedUntil) {
		t.blockedUntil = until
	}
	t.mu.Unlock()
	if t.ledger != nil {
		t.ledger.Observe(dataverse.RateLimit{BurstRemaining: -1, TimeRemaining: -1, RetryAfter: d})
	}
}

// Acquire waits until one request of n operations (a PATCH, a GET, or a
// $batch of n parts) may be sent, and returns how long it waited and the
// release to call when it is answered.
func (t *Throttle) Acquire(ctx context.Context, n int) (release func(), waited time.Duration, err error) {
	if d := t.Blocked(); d > 0 {
		return nil, 0, &BudgetError{Limit: limitRetryAfter, Wait: d}
	}
	if t.ledger == nil {
		return func() {}, 0, nil
	}
	start := time.Now()
	release, err = t.ledger.Acquire(ctx, n)
	return release, time.Since(start), err
}

// Observe adapts to what Dataverse said: a 429 pauses the organization,
// and what the server says is left lowers the budget to match, so that
// the server's count, not ours, is the one respected.
func (t *Throttle) Observe(rl dataverse.RateLimit) {
	if rl.RetryAfter > 0 {
		t.mu.Lock()
		if until := time.Now().Add(rl.RetryAfter); until.After(t.blockedUntil) {
			t.blockedUntil = until
		}
		t.mu.Unlock()
	}
	if t.ledger != nil {
		t.ledger.Observe(rl)
	}
}
