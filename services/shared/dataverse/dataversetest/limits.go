package dataversetest

import (
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Limits are Dataverse's service protection limits, enforced per user as
// Microsoft Learn's "Service protection API limits" describes them
// (https://learn.microsoft.com/power-apps/developer/data-platform/api-limits,
// sections "How service protection API limits are enforced" and "Service
// protection API limit errors returned"): the number of requests and their
// combined execution time within a sliding window, and the requests in
// progress at once. A $batch is one request toward the number of requests
// and the concurrency ("A batch can contain up to 1000 operations and will
// avoid the number of requests limit"), while the execution time of all its
// operations counts toward the execution time ("Larger sized batches
// increase the chance you will encounter execution time limits"). A zero
// limit is not enforced.
type Limits struct {
	// Requests per Window (Dataverse: 6000).
	Requests int
	// ExecutionTime is the combined execution time of the user's requests
	// per Window (Dataverse: 20 minutes).
	ExecutionTime time.Duration
	// Window is the sliding window of both (Dataverse: 300 s).
	Window time.Duration
	// Concurrent requests in progress at once (Dataverse: 52).
	Concurrent int
	// OperationTime is how long one operation executes: a request, or each
	// part of a $batch in turn (Dataverse runs them sequentially). The
	// stand-in really waits it, so that requests are in progress as long
	// as on a server (which is what the concurrency limit and a client's
	// measured latency see), and charges exactly this much per operation
	// to the execution time, so that the limit does not depend on how
	// loaded the machine running the stand-in is. Waiting costs a timer,
	// not a core.
	OperationTime time.Duration
	// DOPHint, when positive, is sent as x-ms-dop-hint (Microsoft Learn,
	// "Send parallel requests": the degree of parallelism recommended for
	// the environment).
	DOPHint int
}

// DataverseLimits are Dataverse's documented default limits per user and
// web server: 6000 requests and 20 minutes of execution time in 5 minutes,
// 52 requests at once. Operations take no time unless OperationTime is set.
func DataverseLimits() *Limits {
	return &Limits{Requests: 6000, ExecutionTime: 20 * time.Minute, Window: 5 * time.Minute, Concurrent: 52}
}

// The error codes of the three limits, as the Web API sends them (the SDK
// for .NET's are -2147015902, -2147015903 and -2147015898).
const (
	CodeRequests      = "0x80072322"
	CodeExecutionTime = "0x80072321"
	CodeConcurrency   = "0x80072326"
)

// LimitStats is what the limits saw, over every user.
type LimitStats struct {
	Requests       int           // admitted (a $batch is one)
	Operations     int           // admitted (each part of a $batch is one)
	ExecutionTime  time.Duration // charged
	PeakConcurrent int
	Throttled      map[string]int // 429s answered by the limits, by error code
}

// LimitStats returns what the limits saw so far.
func (s *Server) LimitStats() LimitStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.limitStats
	st.Throttled = maps.Clone(st.Throttled)
	return st
}

// Throttled counts the 429 answers given so far (faults and limits).
func (s *Server) Throttled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.throttled
}

// userLimits is one user's use of the limits.
type userLimits struct {
	requests []time.Time // arrival of each request in the window, oldest first
	charges  []charge    // execution time charged in the window, oldest first
	charged  time.Duration
	inflight int
}

type charge struct {
	at time.Time
	d  time.Duration
}

func (u *userLimits) prune(now time.Time, window time.Duration) {
	cut := 0
	for cut < len(u.requests) && now.Sub(u.requests[cut]) >= window {
		cut++
	}
	u.requests = u.requests[cut:]
	cut = 0
	for cut < len(u.charges) && now.Sub(u.charges[cut].at) >= window {
		u.charged -= u.charges[cut].d
		cut++
	}
	u.charges = u.charges[cut:]
}

// userOf is whom the limits of r are counted against: the application
// user whose token r carries (the stand-in knows one), or anonymous.
func (s *Server) userOf(r *http.Request) string {
	if s.opts.ClientID != "" && strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") && s.authorized(r) {
		return s.opts.ClientID
	}
	return "anonymous"
}

// admission is a request the limits let in.
type admission struct {
	s *Server
	u *userLimits // nil: no limits
}

// release is called once the request is answered.
func (a admission) release() {
	if a.u == nil {
		return
	}
	a.s.mu.Lock()
	a.u.inflight--
	a.s.mu.Unlock()
}

// headers sends what is left as the response goes, after the request's
// execution, as a server knows it then.
func (a admission) headers(w http.ResponseWriter) {
	if a.u == nil {
		return
	}
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	lim := a.s.opts.Limits
	a.u.prune(time.Now(), lim.Window)
	a.s.rateLimitHeaders(w, lim, a.u)
}

// admit enforces the limits for one request of ops operations; false
// means answered 429 (with the x-ms-ratelimit headers).
func (s *Server) admit(w http.ResponseWriter, r *http.Request, ops int) (admission, bool) {
	lim := s.opts.Limits
	if lim == nil {
		return admission{}, true
	}
	user := s.userOf(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.limits[user]
	if u == nil {
		u = &userLimits{}
		s.limits[user] = u
	}
	now := time.Now()
	u.prune(now, lim.Window)
	exec := time.Duration(ops) * lim.OperationTime
	var code, msg string
	var retry time.Duration
	switch {
	case lim.Requests > 0 && len(u.requests) >= lim.Requests:
		// One more fits once enough of the window's requests have left it.
		code, msg = CodeRequests, fmt.Sprintf("Number of requests exceeded the limit of %d over time window of %d seconds.", lim.Requests, int(lim.Window.Seconds()))
		retry = lim.Window - now.Sub(u.requests[len(u.requests)-lim.Requests])
	case lim.ExecutionTime > 0 && u.charged >= lim.ExecutionTime:
		code, msg = CodeExecutionTime, fmt.Sprintf("Combined execution time of incoming requests exceeded limit of %d milliseconds over time window of %d seconds. Decrease number of concurrent requests or reduce the duration of requests and try again later.", lim.ExecutionTime.Milliseconds(), int(lim.Window.Seconds()))
		left := u.charged
		for _, c := range u.charges {
			left -= c.d
			if left < lim.ExecutionTime {
				retry = lim.Window - now.Sub(c.at)
				break
			}
		}
	case lim.Concurrent > 0 && u.inflight >= lim.Concurrent:
		// Immediate, and over as soon as a request ends.
		code, msg, retry = CodeConcurrency, fmt.Sprintf("Number of concurrent requests exceeded the limit of %d.", lim.Concurrent), time.Second
	default:
		u.requests = append(u.requests, now)
		u.charges = append(u.charges, charge{now, exec})
		u.charged += exec
		u.inflight++
		st := &s.limitStats
		st.Requests++
		st.Operations += ops
		st.ExecutionTime += exec
		st.PeakConcurrent = max(st.PeakConcurrent, u.inflight)
		return admission{s: s, u: u}, true
	}
	s.throttled++
	if s.limitStats.Throttled == nil {
		s.limitStats.Throttled = map[string]int{}
	}
	s.limitStats.Throttled[code]++
	s.rateLimitHeaders(w, lim, u)
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int((retry+time.Second-1)/time.Second))))
	odataError(w, http.StatusTooManyRequests, code, msg)
	return admission{}, false
}

// rateLimitHeaders sends what is left, the way Dataverse does (Microsoft
// Learn, "Service protection API limits", section "HTTP Response
// headers"): the requests left as an integer, the execution time left in
// seconds with a thousands separator and two decimals ("1,199.46").
func (s *Server) rateLimitHeaders(w http.ResponseWriter, lim *Limits, u *userLimits) {
	h := w.Header()
	if lim.Requests > 0 {
		h.Set("x-ms-ratelimit-burst-remaining-xrm-requests", strconv.Itoa(max(0, lim.Requests-len(u.requests))))
	}
	if lim.ExecutionTime > 0 {
		h.Set("x-ms-ratelimit-time-remaining-xrm-requests", secondsWithSeparator(max(0, lim.ExecutionTime-u.charged)))
	}
	if lim.DOPHint > 0 {
		h.Set("x-ms-dop-hint", strconv.Itoa(lim.DOPHint))
	}
}

// secondsWithSeparator formats d as seconds: "1,199.46".
func secondsWithSeparator(d time.Duration) string {
	cents := d.Milliseconds() / 10
	whole, frac := strconv.FormatInt(cents/100, 10), cents%100
	var b strings.Builder
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return fmt.Sprintf("%s.%02d", b.String(), frac)
}

// execute waits one operation's execution time; false means the client
// went away meanwhile.
func (s *Server) execute(r *http.Request) bool {
	lim := s.opts.Limits
	if lim == nil || lim.OperationTime <= 0 {
		return true
	}
	t := time.NewTimer(lim.OperationTime)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}
