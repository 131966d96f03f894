package writer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// ErrBudget means the budget would not allow the request in time.
var ErrBudget = errors.New("the request budget does not allow it in time")

// ErrBlocked means the organization is paused after a 429.
var ErrBlocked = errors.New("organization throttled by Dataverse")

// BudgetError is a request the budget did not let go: Limit is what it
// waited for (requests, execution_time, concurrency, retry_after), Wait how
// long at least it would have had to wait more, when known.
type BudgetError struct {
	Limit string
	Wait  time.Duration
	Cause error // the context's error, when the caller gave up
}

func (e *BudgetError) Error() string {
	msg := "the request budget (" + e.Limit + ") does not allow it"
	if e.Wait > 0 {
		msg += fmt.Sprintf(" for %s", e.Wait.Round(time.Millisecond))
	}
	if e.Cause != nil {
		msg += ": " + e.Cause.Error()
	}
	return msg
}

func (e *BudgetError) Unwrap() error { return e.Cause }

func (e *BudgetError) Is(target error) bool {
	if e.Limit == limitRetryAfter {
		return target == ErrBlocked
	}
	return target == ErrBudget
}

// ledgerStore keeps a budget's state; save is a compare-and-set at the
// revision load returned.
type ledgerStore interface {
	load(ctx context.Context) (ledgerState, uint64, error)
	save(ctx context.Context, st ledgerState, rev uint64) (bool, error)
}

// Ledger is the budget of one environment and application user: every
// request to Dataverse waits here until the number of requests, their
// execution time and the requests in progress all allow it (budget.go),
// FIFO. The state may be shared (a KV key) by every replica; each replica
// changes it through one goroutine, which takes every acquisition,
// release and observation waiting at that moment into one
// compare-and-set, so replicas contend only with each other, not their
// workers. The goroutine runs only while there is something to do.
type Ledger struct {
	store   ledgerStore
	lim     limits
	owner   string        // this replica, in the holds
	holdFor time.Duration // a hold outlives a replica that died by this much
	now     func() time.Time
	// retry is the wait before the next step after one the store failed
	// (a field for the tests, which need not wait out maxFailing of them).
	retry time.Duration

	mu      sync.Mutex
	queue   []*ticket
	changes []func(*ledgerState, time.Time) bool
	running bool
	kick    chan struct{}
	paused  time.Time // as last read
	failing int       // steps in a row the state could not be read or written
}

// ticket is one acquisition waiting.
type ticket struct {
	ops      int
	deadline time.Time // zero: none
	answer   chan grantOrError
	// Guarded by the ledger's mu.
	state int
	limit string // what it waits for, when it waits
}

const (
	waiting = iota
	answered
	withdrawn
)

type grantOrError struct {
	a   admission
	err error
}

// newLedger returns a ledger of b over store for owner.
func newLedger(store ledgerStore, b Budget, owner string, holdFor time.Duration) *Ledger {
	return &Ledger{store: store, lim: limitsOf(b), owner: owner, holdFor: holdFor, now: time.Now, retry: 200 * time.Millisecond,
		kick: make(chan struct{}, 1)}
}

// Acquire waits until one request of ops operations may go, and returns
// the release to call once it is answered: the time between is its
// execution time. It fails at once when the wait would outlast ctx's
// deadline, and with ErrBlocked while a 429's Retry-After lasts.
func (l *Ledger) Acquire(ctx context.Context, ops int) (release func(), err error) {
	t := &ticket{ops: ops, answer: make(chan grantOrError, 1)}
	if d, ok := ctx.Deadline(); ok {
		t.deadline = d
	}
	l.mu.Lock()
	l.queue = append(l.queue, t)
	l.startLocked()
	l.mu.Unlock()
	select {
	case g := <-t.answer:
		if g.err != nil {
			return nil, g.err
		}
		return l.releaser(g.a, ops), nil
	case <-ctx.Done():
	}
	l.mu.Lock()
	if t.state == waiting {
		t.state = withdrawn
		l.queue = slices.DeleteFunc(l.queue, func(q *ticket) bool { return q == t })
		limit := t.limit
		l.mu.Unlock()
		return nil, &BudgetError{Limit: cmp.Or(limit, "budget"), Cause: ctx.Err()}
	}
	l.mu.Unlock()
	// Answered meanwhile: a grant not used is given back at once.
	if g := <-t.answer; g.err == nil {
		l.releaser(g.a, ops)()
	}
	return nil, &BudgetError{Limit: "budget", Cause: ctx.Err()}
}

// releaser is the release of a grant: once.
func (l *Ledger) releaser(a admission, ops int) func() {
	start := l.now()
	var once sync.Once
	return func() {
		once.Do(func() {
			measured := l.now().Sub(start)
			l.change(func(st *ledgerState, now time.Time) bool {
				st.release(now, l.lim, l.owner, a, ops, measured)
				return true
			})
		})
	}
}

// Observe takes in what a response said about the limits.
func (l *Ledger) Observe(rl dataverse.RateLimit) {
	if !rl.Present() {
		return
	}
	if rl.RetryAfter > 0 {
		l.mu.Lock()
		if until := l.now().Add(rl.RetryAfter); until.After(l.paused) {
			l.paused = until
		}
		l.mu.Unlock()
	}
	l.change(func(st *ledgerState, now time.Time) bool { return st.observe(now, l.lim, rl) })
}

// Paused is how long the last 429 seen here or by another replica still
// pauses the budget, as far as this replica knows.
func (l *Ledger) Paused() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return max(0, l.paused.Sub(l.now()))
}

func (l *Ledger) change(c func(*ledgerState, time.Time) bool) {
	l.mu.Lock()
	l.changes = append(l.changes, c)
	l.startLocked()
	l.mu.Unlock()
}

func (l *Ledger) startLocked() {
	if !l.running {
		l.running = true
		go l.run()
		return
	}
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// run changes the state until nothing waits and nothing is left to record.
func (l *Ledger) run() {
	for {
		l.mu.Lock()
		if len(l.queue) == 0 && len(l.changes) == 0 {
			l.running = false
			l.mu.Unlock()
			return
		}
		queue := slices.Clone(l.queue)
		changes := l.changes
		l.changes = nil
		l.mu.Unlock()

		next := l.step(queue, changes)
		if next < 0 {
			continue // lost a compare-and-set: read again at once
		}
		l.mu.Lock()
		idle := len(l.queue) == 0 && len(l.changes) == 0
		l.mu.Unlock()
		if idle {
			continue
		}
		t := time.NewTimer(next)
		select {
		case <-l.kick:
		case <-t.C:
		}
		t.Stop()
	}
}

// maxSleep bounds a wait of the loop, should a kick be missed.
const maxSleep = 5 * time.Second

// step applies changes and admits what it can of queue, in one
// compare-and-set. It returns how long to wait before the next step
// (unless something happens here first), or -1 to step again at once.
func (l *Ledger) step(queue []*ticket, changes []func(*ledgerState, time.Time) bool) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, rev, err := l.store.load(ctx)
	if err != nil {
		l.failed(queue, changes, err)
		return l.retry
	}
	now := l.now()
	st.prune(now, l.lim)
	dirty := false
	for _, c := range changes {
		if c(&st, now) {
			dirty = true
		}
	}
	var decided []*ticket
	var results []grantOrError
	waits := map[*ticket]string{}
	next := maxSleep
tickets:
	for _, t := range queue {
		a := st.admit(now, l.lim, t.ops, l.owner, now.Add(l.holdFor))
		switch {
		case a.ok:
			dirty = true
			decided, results = append(decided, t), append(results, grantOrError{a: a})
			continue
		case a.limit == limitRetryAfter:
			// Every request waits out the pause.
			decided, results = append(decided, t), append(results, grantOrError{err: &BudgetError{Limit: a.limit, Wait: a.wait}})
			continue
		case a.limit == limitConcurrency:
			// Until a request ends: here, a kick; at another replica, only
			// a look at the state tells.
			if _, others := st.inFlightBesides(l.owner); others > 0 {
				next = min(next, max(2*time.Millisecond, min(50*time.Millisecond, time.Duration(st.perOp()*float64(time.Second)/4))))
			}
		default:
			if !t.deadline.IsZero() && now.Add(a.wait).After(t.deadline) {
				decided, results = append(decided, t), append(results, grantOrError{err: &BudgetError{Limit: a.limit, Wait: a.wait}})
				continue
			}
			next = min(next, a.wait)
		}
		waits[t] = a.limit
		break tickets // first come, first served: the rest wait behind it
	}
	if dirty {
		ok, err := l.store.save(ctx, st, rev)
		switch {
		case err != nil:
			l.failed(queue, changes, err)
			return l.retry
		case !ok:
			l.requeue(changes)
			return -1
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failing = 0
	l.paused = time.Unix(0, st.Paused)
	for t, limit := range waits {
		t.limit = limit
	}
	for i, t := range decided {
		if t.state == withdrawn {
			if results[i].err == nil {
				// Gone while granted: give the grant back.
				a := results[i].a
				l.changes = append(l.changes, func(st *ledgerState, now time.Time) bool {
					st.release(now, l.lim, l.owner, a, 0, 0)
					return true
				})
			}
			continue
		}
		t.state = answered
		l.queue = slices.DeleteFunc(l.queue, func(q *ticket) bool { return q == t })
		t.answer <- results[i]
	}
	return next
}

// maxFailing is how many steps in a row may fail before the changes not
// yet stored are given up: a release not stored lapses with its hold, a
// reservation with the window, so nothing is lost for long (and a process
// whose connection is gone stops trying).
const maxFailing = 25

// failed answers every waiting ticket with err (the budget cannot be read
// or written: the callers retry later) and keeps the changes for the next
// step, up to maxFailing steps.
func (l *Ledger) failed(queue []*ticket, changes []func(*ledgerState, time.Time) bool, err error) {
	l.mu.Lock()
	l.failing++
	keep := l.failing < maxFailing
	l.mu.Unlock()
	if keep {
		l.requeue(changes)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, t := range queue {
		if t.state != waiting {
			continue
		}
		t.state = answered
		l.queue = slices.DeleteFunc(l.queue, func(q *ticket) bool { return q == t })
		t.answer <- grantOrError{err: err}
	}
}

func (l *Ledger) requeue(changes []func(*ledgerState, time.Time) bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.changes = append(changes, l.changes...)
}
