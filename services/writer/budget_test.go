package writer

import (
	"testing"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

var t0 = time.Unix(1_700_000_000, 0)

// testLimits: 3 requests and 1 s of execution time per minute (slots of
// a second), 2 at once.
func testLimits() limits {
	return limitsOf(Budget{Requests: 3, ExecutionTime: time.Second, Window: time.Minute, Concurrent: 2})
}

func TestLedgerStateAdmit(t *testing.T) {
	t.Parallel()
	type req struct {
		ops       int
		at        time.Duration // after t0
		wantOK    bool
		wantLimit string
		wantWait  time.Duration // when not ok and known
	}
	for _, tc := range []struct {
		name       string
		concurrent int // instead of testLimits', when the case is not about it
		setup      func(*ledgerState)
		reqs       []req
	}{
		{"a $batch is one request", 10, func(st *ledgerState) { st.PerOp = 0.01 }, []req{
			{ops: 10, wantOK: true}, {ops: 10, at: 2 * time.Second, wantOK: true}, {ops: 80, at: 3 * time.Second, wantOK: true},
			// The first slot [t0, t0+1s) leaves the window at t0+62s: a
			// window after its end and a slot more.
			{ops: 1, at: 4 * time.Second, wantLimit: limitRequests, wantWait: 58 * time.Second},
		}},
		{"every operation's time counts", 10, func(st *ledgerState) { st.PerOp = 0.1 }, []req{
			{ops: 6, wantOK: true}, // 0.6 s reserved
			{ops: 5, at: time.Second, wantLimit: limitExecutionTime, wantWait: 61 * time.Second},
			{ops: 4, at: time.Second, wantOK: true}, // exactly the rest
		}},
		{"a batch longer than the window's time goes alone", 10, func(st *ledgerState) { st.PerOp = 0.5 }, []req{
			{ops: 10, wantOK: true}, {ops: 1, wantLimit: limitExecutionTime},
		}},
		{"concurrency", 0, func(st *ledgerState) { st.PerOp = 0.01 }, []req{
			{ops: 1, wantOK: true}, {ops: 1, wantOK: true}, {ops: 1, wantLimit: limitConcurrency},
		}},
		{"the DOP hint lowers the concurrency", 0, func(st *ledgerState) { st.PerOp, st.DOP = 0.01, 1 }, []req{
			{ops: 1, wantOK: true}, {ops: 1, wantLimit: limitConcurrency},
		}},
		{"a higher DOP hint does not raise it", 0, func(st *ledgerState) { st.PerOp, st.DOP = 0.01, 48 }, []req{
			{ops: 1, wantOK: true}, {ops: 1, wantOK: true}, {ops: 1, wantLimit: limitConcurrency},
		}},
		{"paused", 0, func(st *ledgerState) { st.Paused = t0.Add(5 * time.Second).UnixNano() }, []req{
			{ops: 1, at: time.Second, wantLimit: limitRetryAfter, wantWait: 4 * time.Second},
			{ops: 1, at: 5 * time.Second, wantOK: true},
		}},
		{"a dead replica's holds lapse", 0, func(st *ledgerState) {
			st.PerOp, st.Holds = 0.01, []hold{{Owner: "dead", N: 2, Until: t0.Add(time.Second).UnixNano()}}
		}, []req{
			{ops: 1, wantLimit: limitConcurrency}, {ops: 1, at: time.Second, wantOK: true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := testLimits()
			if tc.concurrent > 0 {
				l.concurrent = tc.concurrent
			}
			var st ledgerState
			tc.setup(&st)
			for i, r := range tc.reqs {
				now := t0.Add(r.at)
				st.prune(now, l)
				a := st.admit(now, l, r.ops, "me", now.Add(time.Minute))
				if a.ok != r.wantOK || a.limit != r.wantLimit || (r.wantWait != 0 && a.wait != r.wantWait) {
					t.Fatalf("request %d (%d ops at +%s): %+v, want ok %v limit %q wait %s", i, r.ops, r.at, a, r.wantOK, r.wantLimit, r.wantWait)
				}
			}
		})
	}
}

// The reservation gives way to the measured time, in the slot the request
// ended in; the hold ends; the time per operation is learned.
func TestLedgerStateRelease(t *testing.T) {
	t.Parallel()
	l := testLimits()
	st := ledgerState{PerOp: 0.1}
	a := st.admit(t0, l, 5, "me", t0.Add(time.Minute))
	if _, exec := st.used(); !a.ok || exec != 0.5 {
		t.Fatalf("admit = %+v, %v s reserved, want 0.5", a, exec)
	}
	st.release(t0.Add(2500*time.Millisecond), l, "me", a, 5, 200*time.Millisecond)
	reqs, exec := st.used()
	if reqs != 1 || exec < 0.2-1e-9 || exec > 0.2+1e-9 {
		t.Errorf("after release: %d requests, %v s, want 1 and 0.2", reqs, exec)
	}
	if len(st.Slots) != 2 || st.Slots[1].Slot != l.slotOf(t0.Add(2500*time.Millisecond)) || st.Slots[1].Exec != 0.2 {
		t.Errorf("slots %+v: the measured time belongs to the slot the request ended in", st.Slots)
	}
	if all, _ := st.inFlightBesides("me"); all != 0 {
		t.Errorf("%d in flight after the release", all)
	}
	if want := 0.8*0.1 + 0.2*0.04; st.PerOp < want-1e-9 || st.PerOp > want+1e-9 {
		t.Errorf("PerOp = %v, want %v", st.PerOp, want)
	}
	// The window slides: the slots leave a window (and at most two slots)
	// later.
	st.prune(t0.Add(time.Minute+3*time.Second), l)
	if reqs, _ := st.used(); reqs != 0 || len(st.Slots) != 1 {
		t.Errorf("a minute on: %d requests, slots %+v", reqs, st.Slots)
	}
	st.prune(t0.Add(time.Minute+4*time.Second), l)
	if len(st.Slots) != 0 {
		t.Errorf("slots %+v left after the window", st.Slots)
	}
}

// What the server says is left only ever lowers what the window allows.
func TestLedgerStateObserve(t *testing.T) {
	t.Parallel()
	l := testLimits()
	none := dataverse.RateLimit{BurstRemaining: -1, TimeRemaining: -1}
	for _, tc := range []struct {
		name        string
		rl          dataverse.RateLimit
		changed     bool
		wantReqs    int
		wantExec    float64
		wantDOP     int
		wantPausedS int64
	}{
		{"nothing", none, false, 1, 0.1, 0, 0},
		{"more left than here", dataverse.RateLimit{BurstRemaining: 5000, TimeRemaining: time.Hour}, false, 1, 0.1, 0, 0},
		{"one request left", dataverse.RateLimit{BurstRemaining: 1, TimeRemaining: -1}, true, 2, 0.1, 0, 0},
		{"nothing left", dataverse.RateLimit{BurstRemaining: 0, TimeRemaining: 0}, true, 3, 1, 0, 0},
		{"a hint", dataverse.RateLimit{BurstRemaining: -1, TimeRemaining: -1, DOPHint: 4}, true, 1, 0.1, 4, 0},
		{"a 429", dataverse.RateLimit{BurstRemaining: -1, TimeRemaining: -1, RetryAfter: 7 * time.Second}, true, 1, 0.1, 0, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := ledgerState{PerOp: 0.1}
			st.admit(t0, l, 1, "me", t0.Add(time.Minute))
			st.Paused = t0.Add(3 * time.Second).UnixNano()
			if got := st.observe(t0, l, tc.rl); got != tc.changed {
				t.Errorf("changed = %v", got)
			}
			reqs, exec := st.used()
			if reqs != tc.wantReqs || exec < tc.wantExec-1e-6 || exec > tc.wantExec+1e-6 || st.DOP != tc.wantDOP {
				t.Errorf("used %d requests, %v s, DOP %d; want %d, %v, %d", reqs, exec, st.DOP, tc.wantReqs, tc.wantExec, tc.wantDOP)
			}
			// A pause is only ever extended.
			if want := t0.Add(time.Duration(max(3, tc.wantPausedS)) * time.Second).UnixNano(); st.Paused != want {
				t.Errorf("paused until %v, want %v", time.Unix(0, st.Paused), time.Unix(0, want))
			}
		})
	}
}

// The execution time the server says is left is the measure of what was
// used: it raises the use, or lowers it to the server's (the wall times
// measured here are more), and what is reserved for requests in progress
// stays reserved.
func TestLedgerStateObserveExecutionTime(t *testing.T) {
	t.Parallel()
	l := testLimits() // 1 s of execution a minute
	left := func(d time.Duration) dataverse.RateLimit {
		return dataverse.RateLimit{BurstRemaining: -1, TimeRemaining: d}
	}
	for _, tc := range []struct {
		name     string
		rl       dataverse.RateLimit
		changed  bool
		wantExec float64 // used, reservations included
	}{
		// 0.5 s measured, 0.1 s reserved for the request in progress.
		{"the server measured less", left(800 * time.Millisecond), true, 0.2 + 0.1},
		{"the server measured as much", left(500 * time.Millisecond), false, 0.6},
		{"the server counts the request in progress", left(400 * time.Millisecond), false, 0.6},
		{"the server measured more", left(100 * time.Millisecond), true, 0.9},
		{"more left than the limit", left(time.Hour), true, 0.1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := ledgerState{PerOp: 0.1}
			a := st.admit(t0, l, 1, "me", t0.Add(time.Minute))
			st.release(t0.Add(2*time.Second), l, "me", a, 1, 500*time.Millisecond)
			st.PerOp = 0.1
			st.admit(t0.Add(2*time.Second), l, 1, "me", t0.Add(time.Minute)) // in progress
			if got := st.observe(t0.Add(3*time.Second), l, tc.rl); got != tc.changed {
				t.Errorf("changed = %v", got)
			}
			if _, exec := st.used(); exec < tc.wantExec-1e-6 || exec > tc.wantExec+1e-6 {
				t.Errorf("used %v s, want %v", exec, tc.wantExec)
			}
			if r := st.reserved(); r < 0.1-1e-9 || r > 0.1+1e-9 {
				t.Errorf("reserved %v s, want the 0.1 s of the request in progress", r)
			}
		})
	}
	// An answer that overtook a later one does not lower the use below
	// what the later said, for a second; then it may.
	st := ledgerState{PerOp: 0.1}
	a := st.admit(t0, l, 1, "me", t0.Add(time.Minute))
	st.release(t0.Add(2*time.Second), l, "me", a, 1, 500*time.Millisecond)
	st.observe(t0.Add(3*time.Second), l, left(600*time.Millisecond))                      // the server used 0.4 s
	st.observe(t0.Add(3*time.Second+100*time.Millisecond), l, left(900*time.Millisecond)) // an older answer, 0.1 s
	if _, exec := st.used(); exec < 0.4-1e-6 || exec > 0.4+1e-6 {
		t.Errorf("used %v s after a stale answer, want the 0.4 s said last", exec)
	}
	st.observe(t0.Add(4*time.Second+200*time.Millisecond), l, left(900*time.Millisecond))
	if _, exec := st.used(); exec < 0.1-1e-6 || exec > 0.1+1e-6 {
		t.Errorf("used %v s a second later, want 0.1 s", exec)
	}
}
