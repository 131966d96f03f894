package dataversetest

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Fault is an answer given instead of serving, to the next Count API
// requests (a $batch is one request), or, with Row, to the next Count
// operations on that row (a part of a $batch is one).
type Fault struct {
	Status     int           // e.g. 429, 503, 400; 0 serves normally after Delay
	RetryAfter time.Duration // sent as Retry-After, in whole seconds
	Delay      time.Duration // wait before answering: a slow server
	Count      int
	Row        string // a row id: only operations on it
}

// Inject queues a fault for the next API requests (or row operations).
func (s *Server) Inject(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Row != "" {
		f.Row = strings.ToLower(f.Row)
		s.rowFaults = append(s.rowFaults, f)
		return
	}
	s.faults = append(s.faults, f)
}

// Overlaps counts the PATCHes that began while another PATCH of the same
// row was still in progress (its delay included): writes of one row that
// overlapped, whose order Dataverse does not promise.
func (s *Server) Overlaps() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.overlaps
}

// nextFault takes the next injected fault, else asks Options.Faults.
func (s *Server) nextFault() Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	var fault Fault
	switch {
	case len(s.faults) > 0:
		f := &s.faults[0]
		f.Count--
		fault = *f
		if f.Count <= 0 {
			s.faults = s.faults[1:]
		}
	case s.opts.Faults != nil:
		fault = s.opts.Faults()
	}
	if fault.Status == http.StatusTooManyRequests {
		s.throttled++
	}
	return fault
}

// applyFault waits out the fault's delay and answers its status; false
// means answered.
func applyFault(w http.ResponseWriter, r *http.Request, fault Fault) bool {
	if fault.Delay > 0 {
		select {
		case <-time.After(fault.Delay):
		case <-r.Context().Done():
			return false
		}
	}
	if fault.Status == 0 {
		return true
	}
	if fault.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(fault.RetryAfter.Seconds())))
	}
	odataError(w, fault.Status, "0x80072322", "Injected fault: "+http.StatusText(fault.Status))
	return false
}

// writingRows marks rows as being written and returns the unmarking.
func (s *Server) writingRows(rows []string) func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range rows {
		if s.writing[k] > 0 {
			s.overlaps++
		}
		s.writing[k]++
	}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, k := range rows {
			if s.writing[k]--; s.writing[k] <= 0 {
				delete(s.writing, k)
			}
		}
	}
}

// rowFault takes the next fault injected for row id, if any.
func (s *Server) rowFault(id string) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.rowFaults {
		f := &s.rowFaults[i]
		if f.Row != id {
			continue
		}
		f.Count--
		fault := *f
		if f.Count <= 0 {
			s.rowFaults = append(s.rowFaults[:i], s.rowFaults[i+1:]...)
		}
		if fault.Status == http.StatusTooManyRequests {
			s.throttled++
		}
		return fault, true
	}
	return Fault{}, false
}
