package writer

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

// Two replicas spending one shared budget concurrently never spend more
// in any window than the budget allows, together; and they do spend it.
func TestSharedBudgetHoldsAcrossReplicas(t *testing.T) {
	js, _ := testkit.JetStream(t)
	kv, err := js.KeyValue(t.Context(), bus.BucketBudgets)
	if err != nil {
		t.Fatal(err)
	}
	const requests, window, run, n = 60, 2 * time.Second, 5 * time.Second, 5
	b := Budget{Requests: requests, Window: window, Concurrent: 1000}
	var mu sync.Mutex
	var spent []time.Time
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(t.Context(), run)
	defer cancel()
	for replica := range 2 {
		s := NewKVSpender(kv, "https://org.crm.dynamics.com", "app", b, n)
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					if err := s.Take(ctx, n); err != nil {
						continue
					}
					mu.Lock()
					for range n {
						spent = append(spent, time.Now())
					}
					mu.Unlock()
				}
			}()
		}
		_ = replica
	}
	wg.Wait()
	sort.Slice(spent, func(i, j int) bool { return spent[i].Before(spent[j]) })
	busiest := 0
	for i, j := 0, 0; j < len(spent); j++ {
		for spent[j].Sub(spent[i]) >= window {
			i++
		}
		busiest = max(busiest, j-i+1)
	}
	if busiest > requests {
		t.Errorf("%d requests in the busiest %s, want at most %d", busiest, window, requests)
	}
	// Burst 5, then 27.5 a second: about 140 over the run.
	if len(spent) < requests {
		t.Errorf("%d requests spent in %s, want the budget used (over %d)", len(spent), run, requests)
	}
	t.Logf("spent %d in %s, busiest window %d of %d", len(spent), run, busiest, requests)
}

// What Dataverse says is left lowers the shared budget for every replica.
func TestSharedBudgetDrains(t *testing.T) {
	js, _ := testkit.JetStream(t)
	kv, err := js.KeyValue(t.Context(), bus.BucketBudgets)
	if err != nil {
		t.Fatal(err)
	}
	b := Budget{Requests: 6000, Window: 5 * time.Minute, Concurrent: 52}
	a := NewKVSpender(kv, "https://org.crm.dynamics.com", "app", b, 10)
	other := NewKVSpender(kv, "https://org.crm.dynamics.com", "app", b, 10)
	if left := a.Left(); left != 100 {
		t.Fatalf("a fresh budget has %v left, want the burst of 100", left)
	}
	a.Drain(3)
	if left := other.Left(); left > 4 {
		t.Errorf("the other replica sees %v left after Dataverse said 3", left)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := other.Take(ctx, 10); err == nil {
		t.Error("took 10 with 3 left and a 100 ms deadline")
	}
	if NewKVSpender(kv, "https://other.crm.dynamics.com", "app", b, 10).Left() != 100 {
		t.Error("another environment shares the budget")
	}
}
