package writer

import (
	"context"
	"errors"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

func mustAcquire(t *testing.T, l *Ledger, ops int) func() {
	t.Helper()
	release, err := l.Acquire(t.Context(), ops)
	if err != nil {
		t.Fatalf("Acquire(%d) = %v", ops, err)
	}
	return release
}

// A request the window will not allow before the caller's deadline fails
// at once, saying what it waits for and how long; one that fits goes as
// soon as the window lets it.
func TestLedgerWindowWait(t *testing.T) {
	t.Parallel()
	const window = 1200 * time.Millisecond
	l := NewLocalLedger(Budget{Requests: 4, ExecutionTime: time.Hour, Window: window, Concurrent: 100})
	start := time.Now()
	for range 4 {
		mustAcquire(t, l, 10)()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err := l.Acquire(ctx, 1)
	var be *BudgetError
	if !errors.As(err, &be) || !errors.Is(err, ErrBudget) || be.Limit != limitRequests || be.Wait < window/2 {
		t.Fatalf("Acquire with the window spent = %v, want the requests limit and about %s", err, window)
	}
	if d := time.Since(start); d > 250*time.Millisecond {
		t.Errorf("the refusal took %s, want it at once", d)
	}
	mustAcquire(t, l, 1)()
	// The first requests leave a window (and at most a slot, 20 ms) later.
	if d := time.Since(start); d < window || d > window*3 {
		t.Errorf("the fifth request went after %s, want after the window of %s", d, window)
	}
}

// Requests in progress wait for one to end; one that gives up while
// waiting takes nothing.
func TestLedgerConcurrency(t *testing.T) {
	t.Parallel()
	l := NewLocalLedger(Budget{Requests: 1000, ExecutionTime: time.Hour, Window: time.Minute, Concurrent: 2})
	r1, r2 := mustAcquire(t, l, 1), mustAcquire(t, l, 10)
	ctx, cancel := context.WithTimeout(t.Context(), 150*time.Millisecond)
	defer cancel()
	_, err := l.Acquire(ctx, 1)
	var be *BudgetError
	if !errors.As(err, &be) || be.Limit != limitConcurrency || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a third at once = %v, want a concurrency wait ending with the deadline", err)
	}
	got := make(chan time.Time, 1)
	go func() {
		release, err := l.Acquire(context.Background(), 1)
		if err != nil {
			t.Errorf("Acquire = %v", err)
		}
		got <- time.Now()
		release()
	}()
	time.Sleep(100 * time.Millisecond)
	released := time.Now()
	r1()
	select {
	case at := <-got:
		if at.Before(released) {
			t.Error("the waiting request went before one ended")
		}
		if d := at.Sub(released); d > time.Second {
			t.Errorf("the waiting request went %s after the release", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting request did not go after the release")
	}
	r2()
	r2() // a release is once
	// The one that gave up holds nothing: two go at once.
	a, b := mustAcquire(t, l, 1), mustAcquire(t, l, 1)
	a()
	b()
}

// Execution time is measured: requests that take long use up the window's
// time, and the next waits for it.
func TestLedgerExecutionTimeMeasured(t *testing.T) {
	t.Parallel()
	l := NewLocalLedger(Budget{Requests: 1000, ExecutionTime: time.Second, Window: 30 * time.Second, Concurrent: 10})
	// The ledger's clock, moved on by hand: each request takes 300 ms
	// exactly (a sleep a loaded machine overran made the third wait out
	// the window).
	var elapsed atomic.Int64
	began := time.Now()
	l.now = func() time.Time { return began.Add(time.Duration(elapsed.Load())) }
	for range 3 {
		release := mustAcquire(t, l, 1)
		elapsed.Add(int64(300 * time.Millisecond))
		release()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err := l.Acquire(ctx, 1)
	var be *BudgetError
	if !errors.As(err, &be) || be.Limit != limitExecutionTime || be.Wait < 20*time.Second {
		t.Fatalf("after 0.9 s of execution against 1 s, and 0.3 s expected of the next: %v, want an execution time wait of nearly the window", err)
	}
}

// A 429 seen by one replica pauses every replica sharing the budget, and
// what the server says is left drains the shared window.
func TestSharedBudgetPauseAndDrain(t *testing.T) {
	t.Parallel()
	js, _ := testkit.JetStream(t)
	kv, err := js.KeyValue(t.Context(), bus.BucketBudgets)
	if err != nil {
		t.Fatal(err)
	}
	b := Budget{Requests: 6000, ExecutionTime: 20 * time.Minute, Window: 5 * time.Minute, Concurrent: 52}
	a := NewKVLedger(kv, "https://org.crm.dynamics.com", "app", "a", b, time.Minute)
	other := NewKVLedger(kv, "https://org.crm.dynamics.com", "app", "b", b, time.Minute)
	mustAcquire(t, other, 1)()
	a.Observe(dataverse.RateLimit{BurstRemaining: -1, TimeRemaining: -1, RetryAfter: 2 * time.Second})
	testkit.Eventually(t, "the pause stored", 5*time.Second, func() bool {
		_, err := other.Acquire(t.Context(), 1)
		return errors.Is(err, ErrBlocked)
	})
	if p := other.Paused(); p <= 0 || p > 2*time.Second {
		t.Errorf("the other replica sees a pause of %s", p)
	}
	time.Sleep(other.Paused())
	mustAcquire(t, other, 1)()
	// Dataverse says no request is left: none goes before the window
	// moves on, whichever replica asks.
	a.Observe(dataverse.RateLimit{BurstRemaining: 0, TimeRemaining: -1})
	testkit.Eventually(t, "the drain stored", 5*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		_, err := other.Acquire(ctx, 1)
		var be *BudgetError
		return errors.As(err, &be) && be.Limit == limitRequests
	})
	// Another environment has a budget of its own.
	mustAcquire(t, NewKVLedger(kv, "https://other.crm.dynamics.com", "app", "a", b, time.Minute), 1)()
}

// Replicas sharing a budget never have more requests in progress than it
// allows, together, and do reach it; a replica that died with requests in
// progress holds them only until its holds lapse.
func TestSharedConcurrencyAcrossReplicas(t *testing.T) {
	t.Parallel()
	js, _ := testkit.JetStream(t)
	kv, err := js.KeyValue(t.Context(), bus.BucketBudgets)
	if err != nil {
		t.Fatal(err)
	}
	const limit = 3
	b := Budget{Requests: 100000, ExecutionTime: time.Hour, Window: time.Minute, Concurrent: limit}
	var inFlight, peak atomic.Int32
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	defer cancel()
	for _, owner := range []string{"a", "b"} {
		l := NewKVLedger(kv, "https://org.crm.dynamics.com", "app", owner, b, time.Minute)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					release, err := l.Acquire(ctx, 1)
					if err != nil {
						continue
					}
					n := inFlight.Add(1)
					for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
					}
					time.Sleep(10 * time.Millisecond)
					inFlight.Add(-1)
					release()
				}
			}()
		}
	}
	wg.Wait()
	if p := peak.Load(); p != limit {
		t.Errorf("peak %d requests in progress, want %d", p, limit)
	}

	// A replica dies holding every slot: another gets in once its holds lapse.
	dead := NewKVLedger(kv, "https://dead.crm.dynamics.com", "app", "dead", b, 400*time.Millisecond)
	for range limit {
		mustAcquire(t, dead, 1) // never released
	}
	alive := NewKVLedger(kv, "https://dead.crm.dynamics.com", "app", "alive", b, time.Minute)
	start := time.Now()
	mustAcquire(t, alive, 1)()
	if d := time.Since(start); d < 300*time.Millisecond || d > 5*time.Second {
		t.Errorf("got in %s after the replica died, want after its 400 ms holds", d)
	}
}

// Two replicas spending one shared budget concurrently never spend more
// requests in any window than it allows, together; and they do spend it.
func TestSharedBudgetHoldsAcrossReplicas(t *testing.T) {
	t.Parallel()
	js, _ := testkit.JetStream(t)
	kv, err := js.KeyValue(t.Context(), bus.BucketBudgets)
	if err != nil {
		t.Fatal(err)
	}
	const requests, window, run = 60, time.Second, 2500 * time.Millisecond
	b := Budget{Requests: requests, ExecutionTime: time.Hour, Window: window, Concurrent: 1000}
	var mu sync.Mutex
	var spent []time.Time
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(t.Context(), run)
	defer cancel()
	for _, owner := range []string{"a", "b"} {
		l := NewKVLedger(kv, "https://org.crm.dynamics.com", "app", owner, b, time.Minute)
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					release, err := l.Acquire(ctx, 5)
					if err != nil {
						continue
					}
					mu.Lock()
					spent = append(spent, time.Now())
					mu.Unlock()
					release()
				}
			}()
		}
	}
	wg.Wait()
	sort.Slice(spent, func(i, j int) bool { return spent[i].Before(spent[j]) })
	// A little less than a window: a grant is recorded a little after it
	// was made, and the window allows the next ones exactly a window later.
	span := window - 100*time.Millisecond
	busiest := 0
	for i, j := 0, 0; j < len(spent); j++ {
		for spent[j].Sub(spent[i]) >= span {
			i++
		}
		busiest = max(busiest, j-i+1)
	}
	if busiest > requests {
		t.Errorf("%d requests in the busiest %s, want at most %d", busiest, span, requests)
	}
	// The whole window at once, then again as it slides: over two windows'
	// worth in the run.
	if len(spent) < 2*requests {
		t.Errorf("%d requests spent in %s, want the budget used (at least %d)", len(spent), run, 2*requests)
	}
	t.Logf("spent %d in %s, busiest window %d of %d", len(spent), run, busiest, requests)
}

// brokenStore fails every read, as a KV whose connection is gone.
type brokenStore struct{}

func (brokenStore) load(context.Context) (ledgerState, uint64, error) {
	return ledgerState{}, 0, errors.New("connection closed")
}
func (brokenStore) save(context.Context, ledgerState, uint64) (bool, error) {
	return false, errors.New("connection closed")
}

// A budget that cannot be read refuses at once, and its goroutine stops
// trying to store what it holds after a while.
func TestLedgerWithoutItsStore(t *testing.T) {
	t.Parallel()
	l := newLedger(brokenStore{}, Budget{Requests: 10, ExecutionTime: time.Minute, Window: time.Minute, Concurrent: 2}, "me", time.Minute)
	l.retry = 10 * time.Millisecond // maxFailing steps of it, not seconds
	start := time.Now()
	if _, err := l.Acquire(t.Context(), 1); err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("Acquire = %v after %s, want the store's error at once", err, time.Since(start))
	}
	l.Observe(dataverse.RateLimit{BurstRemaining: 0, TimeRemaining: -1}) // a change to store
	testkit.Eventually(t, "the ledger's goroutine to stop", 20*time.Second, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return !l.running
	})
}
