package writer

import (
	"math"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// Dataverse's service protection limits, as Microsoft Learn's "Service
// protection API limits" states them
// (https://learn.microsoft.com/power-apps/developer/data-platform/api-limits):
//
//   - "How service protection API limits are enforced": per user and web
//     server, within a 5-minute (300 s) sliding window, 6000 requests and 20
//     minutes (1200 s) of combined execution time, and 52 or more
//     concurrent requests.
//   - "Service protection API limit errors returned", "Number of requests":
//     "A batch can contain up to 1000 operations and will avoid the number
//     of requests limit. However, you will need to be prepared for the
//     execution time limit." A $batch is one request; the time of all its
//     operations is execution time ("Avoid large batches": "Larger sized
//     batches increase the chance you will encounter execution time limits
//     rather than limits on the number of requests"). Entitlement limits,
//     daily and separate, count every operation ("Batch operations are not
//     a valid strategy to bypass entitlement limits").
//   - "Retry operations": a 429 carries Retry-After in seconds; the
//     concurrency error is immediate.
//   - "HTTP Response headers": x-ms-ratelimit-burst-remaining-xrm-requests
//     ("The remaining number of requests for this connection") and
//     x-ms-ratelimit-time-remaining-xrm-requests ("The remaining combined
//     duration for all connections using the same user account"), which
//     "are intended for debugging purposes": the requests left only ever
//     lower what the budget allows; the time left is Dataverse's own
//     measure of what was used, so it replaces the wall times measured
//     here, never below what is reserved for requests in progress.
//   - "Send parallel requests", "Optimum degree of parallelism (DOP)"
//     (https://learn.microsoft.com/power-apps/developer/data-platform/send-parallel-requests):
//     x-ms-dop-hint is the recommended degree of parallelism.
//
// The same facts are in the project's research notes (dataverse.md, 3.3).
//
// The budget keeps all three in one ledger per environment and application
// user: requests and execution time per slot of the window (a sliding
// window, as Dataverse evaluates it), and the requests in progress by
// replica. Execution time is measured from the responses: the wall time of
// each request from the moment the budget let it go to its answer, which
// is more than Dataverse's own measure (the network is in it), so the
// budget errs on the safe side, or what Dataverse says when it sends the
// time left; it is reserved at an estimate while the request is in
// progress.

// slotsPerWindow is how finely the window is kept: a request counts until
// a slot after the end of its slot has left the window, so at most two
// slots' worth (1/30) of the window is waited for in vain.
const slotsPerWindow = 60

// defaultPerOp is the execution time reserved for an operation before any
// was measured.
const defaultPerOp = 1.0 // seconds: on the safe side until measured

// ledgerState is a budget's use of the limits, as stored in its KV key.
type ledgerState struct {
	Slots []slotUse `json:"slots,omitempty"` // oldest first
	Holds []hold    `json:"holds,omitempty"` // requests in progress by replica
	// PerOp is the execution time of one operation, learned (seconds).
	PerOp float64 `json:"perOp,omitempty"`
	// DOP is the last x-ms-dop-hint; 0: none seen.
	DOP int `json:"dop,omitempty"`
	// Paused is when a 429's Retry-After ends (unix ns), for every replica.
	Paused int64 `json:"paused,omitempty"`
	// Server is the most execution time Dataverse said was used in the
	// last second (seconds), and ServerAt when it said so (unix ns):
	// answers that overtook each other are not taken for less use.
	Server   float64 `json:"srv,omitempty"`
	ServerAt int64   `json:"srvAt,omitempty"`
}

type slotUse struct {
	Slot     int64   `json:"s"`
	Requests int     `json:"r,omitempty"`
	Exec     float64 `json:"e,omitempty"` // seconds, measured or reserved
}

type hold struct {
	Owner string  `json:"o"`
	N     int     `json:"n"`
	R     float64 `json:"r,omitempty"` // execution seconds reserved for them
	Until int64   `json:"u"`           // unix ns: the owner died if it has not come back by then
}

// limits are a budget's numbers in the units the ledger keeps.
type limits struct {
	requests   int
	exec       float64 // seconds
	window     time.Duration
	slot       time.Duration
	concurrent int
}

// limitsOf is b in the ledger's units; a zero limit is not enforced.
func limitsOf(b Budget) limits {
	l := limits{requests: b.Requests, exec: b.ExecutionTime.Seconds(), window: b.Window,
		slot: max(b.Window/slotsPerWindow, time.Millisecond), concurrent: b.Concurrent}
	if l.requests <= 0 {
		l.requests = math.MaxInt32
	}
	if l.exec <= 0 {
		l.exec = 1e15 // finite: it may be stored
	}
	if l.concurrent <= 0 {
		l.concurrent = math.MaxInt32
	}
	return l
}

func (l limits) slotOf(t time.Time) int64 { return t.UnixNano() / int64(l.slot) }

// leaves is when slot k no longer counts: a window after its end, and
// one slot more for the time between the budget letting a request go and
// the request reaching Dataverse, whose window starts then.
func (l limits) leaves(k int64) time.Time {
	return time.Unix(0, (k+2)*int64(l.slot)).Add(l.window)
}

// prune drops the slots that left the window and the holds of owners that
// died.
func (st *ledgerState) prune(now time.Time, l limits) {
	cut := 0
	for cut < len(st.Slots) && !l.leaves(st.Slots[cut].Slot).After(now) {
		cut++
	}
	st.Slots = st.Slots[cut:]
	holds := st.Holds[:0]
	for _, h := range st.Holds {
		if h.N > 0 && h.Until > now.UnixNano() {
			holds = append(holds, h)
		}
	}
	st.Holds = holds
}

// used is what the window holds: requests and execution seconds.
func (st *ledgerState) used() (requests int, exec float64) {
	for _, s := range st.Slots {
		requests += s.Requests
		exec += s.Exec
	}
	return requests, exec
}

// inFlightBesides counts the requests in progress, and those of owners
// other than owner.
func (st *ledgerState) inFlightBesides(owner string) (all, others int) {
	for _, h := range st.Holds {
		all += h.N
		if h.Owner != owner {
			others += h.N
		}
	}
	return all, others
}

// slot returns the use of slot k, added at the end if new.
func (st *ledgerState) slot(k int64) *slotUse {
	if n := len(st.Slots); n > 0 && st.Slots[n-1].Slot >= k {
		for i := n - 1; i >= 0; i-- {
			if st.Slots[i].Slot == k {
				return &st.Slots[i]
			}
		}
		// An older slot than the newest: a replica whose clock is behind.
		// Its use goes to the newest, which stays in the window longest.
		return &st.Slots[n-1]
	}
	st.Slots = append(st.Slots, slotUse{Slot: k})
	return &st.Slots[len(st.Slots)-1]
}

func (st *ledgerState) perOp() float64 {
	if st.PerOp > 0 {
		return st.PerOp
	}
	return defaultPerOp
}

// concurrency is the requests allowed in progress at once: the budget's,
// or Dataverse's hint when it is lower.
func (st *ledgerState) concurrency(l limits) int {
	if st.DOP > 0 && st.DOP < l.concurrent {
		return st.DOP
	}
	return l.concurrent
}

// The limit a request waits for (the reason label of
// nac_writer_throttled_total).
const (
	limitRequests      = "requests"
	limitExecutionTime = "execution_time"
	limitConcurrency   = "concurrency"
	limitRetryAfter    = "retry_after"
)

// admission is the ledger's answer to one request.
type admission struct {
	ok      bool
	limit   string        // what it waits for, when not ok
	wait    time.Duration // how long at least; 0 with concurrency: until a request ends
	slot    int64         // where its execution time was reserved
	reserve float64       // seconds reserved
}

// admit lets one request of ops operations go, when every limit allows it,
// and records it for owner until holdUntil.
func (st *ledgerState) admit(now time.Time, l limits, ops int, owner string, holdUntil time.Time) admission {
	if st.Paused > now.UnixNano() {
		return admission{limit: limitRetryAfter, wait: time.Duration(st.Paused - now.UnixNano())}
	}
	reqs, exec := st.used()
	// A request larger than the whole window's time goes once the window
	// is empty, rather than never.
	reserve := min(float64(max(ops, 1))*st.perOp(), l.exec)
	if reqs+1 > l.requests {
		return admission{limit: limitRequests, wait: st.room(now, l, func(s slotUse) float64 { return float64(s.Requests) }, float64(reqs+1-l.requests))}
	}
	if exec+reserve > l.exec+1e-9 {
		return admission{limit: limitExecutionTime, wait: st.room(now, l, func(s slotUse) float64 { return s.Exec }, exec+reserve-l.exec)}
	}
	if all, _ := st.inFlightBesides(owner); all >= st.concurrency(l) {
		return admission{limit: limitConcurrency}
	}
	k := l.slotOf(now)
	s := st.slot(k)
	s.Requests++
	s.Exec += reserve
	st.holdFor(owner, 1, reserve, holdUntil)
	return admission{ok: true, slot: s.Slot, reserve: reserve}
}

// room is how long until slots holding at least need of what of leave the
// window.
func (st *ledgerState) room(now time.Time, l limits, what func(slotUse) float64, need float64) time.Duration {
	freed := 0.0
	for _, s := range st.Slots {
		freed += what(s)
		if freed >= need-1e-9 {
			return max(l.leaves(s.Slot).Sub(now), time.Millisecond)
		}
	}
	return l.window
}

func (st *ledgerState) holdFor(owner string, n int, reserve float64, until time.Time) {
	for i := range st.Holds {
		if st.Holds[i].Owner == owner {
			st.Holds[i].N += n
			st.Holds[i].R += reserve
			st.Holds[i].Until = until.UnixNano()
			return
		}
	}
	if n > 0 {
		st.Holds = append(st.Holds, hold{Owner: owner, N: n, R: reserve, Until: until.UnixNano()})
	}
}

// reserved is the execution time reserved for the requests in progress.
func (st *ledgerState) reserved() float64 {
	r := 0.0
	for _, h := range st.Holds {
		r += h.R
	}
	return r
}

// release records the end of a request admitted as a: its reservation
// gives way to the execution time measured, counted in the slot it ended
// in, and its hold ends.
func (st *ledgerState) release(now time.Time, l limits, owner string, a admission, ops int, measured time.Duration) {
	for i := range st.Slots {
		if st.Slots[i].Slot == a.slot {
			st.Slots[i].Exec = max(0, st.Slots[i].Exec-a.reserve)
			break
		}
	}
	secs := measured.Seconds()
	st.slot(l.slotOf(now)).Exec += secs
	for i := range st.Holds {
		if st.Holds[i].Owner == owner {
			st.Holds[i].N = max(0, st.Holds[i].N-1)
			st.Holds[i].R = max(0, st.Holds[i].R-a.reserve)
		}
	}
	if ops > 0 {
		// A moving average: recent requests say most about the next.
		perOp := secs / float64(ops)
		if st.PerOp == 0 {
			st.PerOp = perOp
		} else {
			st.PerOp = 0.8*st.PerOp + 0.2*perOp
		}
	}
}

// observe takes in what a response said: a 429's Retry-After pauses every
// replica; the hint sets the concurrency; the requests the server says
// are left lower what the window allows to match (never raising it), so
// the budget pauses before the server says no; and the execution time it
// says is left is the measure of what was used, when it says so: the wall
// times measured here are the proxy, and over it by the network and the
// client's own scheduling. It reports whether anything changed.
func (st *ledgerState) observe(now time.Time, l limits, rl dataverse.RateLimit) bool {
	changed := false
	if rl.RetryAfter > 0 {
		if until := now.Add(rl.RetryAfter).UnixNano(); until > st.Paused {
			st.Paused, changed = until, true
		}
	}
	if rl.DOPHint > 0 && rl.DOPHint != st.DOP {
		st.DOP, changed = rl.DOPHint, true
	}
	reqs, exec := st.used()
	if rl.BurstRemaining >= 0 {
		if extra := l.requests - reqs - rl.BurstRemaining; extra > 0 {
			st.slot(l.slotOf(now)).Requests += extra
			changed = true
		}
	}
	if rl.TimeRemaining >= 0 {
		// The server's use of the window, as far as this budget's limit
		// goes. Whether the server counts requests still in progress is not
		// documented: compared with what is measured here, it is taken to;
		// compared with what is measured and reserved, it is taken not to.
		// So it raises the use above both, or lowers it to itself, and
		// what is reserved stays reserved.
		server := max(0, l.exec-rl.TimeRemaining.Seconds())
		if server >= st.Server || now.UnixNano()-st.ServerAt >= int64(time.Second) {
			st.Server, st.ServerAt = server, now.UnixNano()
		}
		server = st.Server
		switch measured := exec - st.reserved(); {
		case server > exec+1e-3:
			st.slot(l.slotOf(now)).Exec += server - exec
			changed = true
		case server < measured-1e-3:
			// Taken off the newest slots (the oldest still leave the window
			// when they would have), never below what is reserved.
			over := min(measured-server, measured)
			for i := len(st.Slots) - 1; i >= 0 && over > 0; i-- {
				cut := min(st.Slots[i].Exec, over)
				st.Slots[i].Exec -= cut
				over -= cut
			}
			changed = true
		}
	}
	return changed
}

// finite reports whether every number of st is one (a value written by
// something else).
func (st *ledgerState) finite() bool {
	if math.IsNaN(st.PerOp) || math.IsInf(st.PerOp, 0) || st.PerOp < 0 || math.IsNaN(st.Server) || math.IsInf(st.Server, 0) {
		return false
	}
	for _, s := range st.Slots {
		if math.IsNaN(s.Exec) || math.IsInf(s.Exec, 0) {
			return false
		}
	}
	for _, h := range st.Holds {
		if math.IsNaN(h.R) || math.IsInf(h.R, 0) {
			return false
		}
	}
	return true
}
