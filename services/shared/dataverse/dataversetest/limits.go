package dataversetest

import (
	"net/http"
	"strconv"
	"time"
)

// Limits are service protection limits. Each operation of a $batch counts.
type Limits struct {
	Requests   int           // operations per Window (Dataverse: 6000)
	Window     time.Duration // sliding window (Dataverse: 5 minutes)
	Concurrent int           // operations in progress at once (Dataverse: 52)
}

// Throttled counts the 429 answers given so far (faults and limits).
func (s *Server) Throttled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.throttled
}

// admit enforces the limits for n operations; false means answered 429.
func (s *Server) admit(w http.ResponseWriter, n int) bool {
	lim := s.opts.Limits
	if lim == nil {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	cut := 0
	for cut < len(s.window) && now.Sub(s.window[cut]) >= lim.Window {
		cut++
	}
	s.window = s.window[cut:]
	var retry time.Duration
	switch {
	case len(s.window)+n > lim.Requests:
		// Wait until enough operations have left the window.
		oldest := s.window[min(len(s.window)-1, len(s.window)+n-lim.Requests-1)]
		retry = lim.Window - now.Sub(oldest)
		w.Header().Set("x-ms-ratelimit-time-remaining-xrm-requests", "0")
	case s.inflight+n > lim.Concurrent:
		retry = time.Second
	default:
		for range n {
			s.window = append(s.window, now)
		}
		s.inflight += n
		w.Header().Set("x-ms-ratelimit-burst-remaining-xrm-requests", strconv.Itoa(lim.Requests-len(s.window)))
		return true
	}
	s.throttled++
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int((retry+time.Second-1)/time.Second))))
	odataError(w, http.StatusTooManyRequests, "0x80072321", "Number of requests exceeded the limit of service protection limits.")
	return false
}

func (s *Server) release(n int) {
	if s.opts.Limits == nil {
		return
	}
	s.mu.Lock()
	s.inflight -= n
	s.mu.Unlock()
}

// DataverseLimits are Dataverse's documented service protection limits per
// user: 6000 requests in 5 minutes, 52 at once.
func DataverseLimits() *Limits {
	return &Limits{Requests: 6000, Window: 5 * time.Minute, Concurrent: 52}
}
