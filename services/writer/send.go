package writer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/protobuf/types/known/durationpb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// Failure classes, the class label of nac_writer_failures_total.
const (
	classThrottled  = "throttled"    // 429, or our own budget or pause
	classLeaseHeld  = "lease_held"   // another worker is writing the contact
	classServer     = "server_error" // 5xx
	classAuth       = "auth"         // 401 after a fresh token, 403
	classToken      = "token"        // the identity provider refused or failed
	classTimeout    = "timeout"
	classNetwork    = "network"
	classJetStream  = "jetstream"   // settings, leases or the decision stream unreadable
	classBadRequest = "bad_request" // 400 and other permanent 4xx: set aside
	classNotFound   = "not_found"   // 404 on the row: recorded obsolete
	classInvalid    = "invalid"     // a decision that does not decode or validate: set aside
)

// leaseWait is how long a decision waits for another worker's lease on
// its contact before it is delivered again: about one write's time.
const leaseWait = 250 * time.Millisecond

// writeOrg decides or sends every item of one organization.
func (s *Service) writeOrg(ctx context.Context, org string, items []*item) {
	t := s.targets.For(org)
	on := true
	if s.switches != nil {
		var err error
		if on, err = s.switches.DataValidation(ctx, org); err != nil {
			for _, it := range items {
				it.retry(classJetStream, errors.New("reading the organization's settings: "+err.Error()))
			}
			return
		}
	}
	var send []*item
	for _, it := range items {
		switch {
		case t.Disabled || !on:
			it.out.Outcome = OutcomeDisabled
		case it.decision.GetValue() == eventsv1.Flag_FLAG_IGNORE:
			it.out.Outcome = OutcomeSkipped
		case t.Dataverse == nil:
			it.out.Outcome = OutcomeWouldWrite
		default:
			send = append(send, it)
		}
	}
	ready, release := s.claim(ctx, send)
	// Released before the outcomes are recorded: the writes are over.
	defer release()
	for start := 0; start < len(ready); start += s.cfg.BatchSize {
		chunk := ready[start:min(start+s.cfg.BatchSize, len(ready))]
		s.writeChunk(ctx, t, chunk)
	}
}

// claim takes the write lease of each item's contact and then checks that
// the item is still the contact's latest decision. Every write of a
// contact happens under its lease and after that check, so the last write
// of a contact is of its latest decision, whatever the workers, replicas
// and redeliveries. It returns the items to write and the release of the
// leases.
func (s *Service) claim(ctx context.Context, items []*item) ([]*item, func()) {
	releases := make([]func(), len(items))
	ok := make([]bool, len(items))
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if s.leases != nil {
				release, err := s.leases.Acquire(ctx, it.decision.GetOrganizationId(), it.decision.GetContactId(), it.seq())
				switch {
				case errors.Is(err, ErrLeaseHeld):
					it.retry(classLeaseHeld, bus.Hold(err, leaseWait))
					return
				case err != nil:
					it.retry(classJetStream, err)
					return
				}
				releases[i] = release
			}
			superseded, err := s.superseded(ctx, it)
			switch {
			case err != nil:
				it.retry(classJetStream, err)
			case superseded:
				it.out.Outcome = OutcomeSuperseded
				s.metrics.superseded.Inc()
			default:
				ok[i] = true
			}
		}()
	}
	wg.Wait()
	var ready []*item
	for i, it := range items {
		if ok[i] {
			ready = append(ready, it)
		}
	}
	return ready, func() {
		for _, r := range releases {
			if r != nil {
				r()
			}
		}
	}
}

func (s *Service) writeChunk(ctx context.Context, t *Target, chunk []*item) {
	if d := t.Throttle.Blocked(); d > 0 {
		s.metrics.throttled.WithLabelValues("retry_after").Add(float64(len(chunk)))
		for _, it := range chunk {
			it.retry(classThrottled, bus.Hold(ErrBlocked, d))
		}
		return
	}
	// One request, whatever its operations: a $batch counts once toward
	// the requests and the concurrency, its operations' time toward the
	// execution time.
	release, waited, err := t.Throttle.Acquire(ctx, len(chunk))
	s.metrics.throttleWait.Observe(waited.Seconds())
	if err != nil {
		// Held until the budget would allow it (at least a second), not
		// retried: waiting is no failure.
		reason, hold := "budget", max(time.Second, t.Throttle.Blocked())
		var be *BudgetError
		if errors.As(err, &be) {
			// Five sixths of the wait: the settler adds up to a fifth, so
			// they are back by the time the budget allows them (those back
			// early wait again, briefly), not up to a fifth later.
			reason, hold = be.Limit, max(hold, be.Wait*5/6)
		}
		s.metrics.throttled.WithLabelValues(reason).Add(float64(len(chunk)))
		for _, it := range chunk {
			it.retry(classThrottled, bus.Hold(fmt.Errorf("waiting for the request budget: %w", err), hold))
		}
		return
	}
	writes := make([]dataverse.FlagWrite, len(chunk))
	for i, it := range chunk {
		writes[i] = dataverse.FlagWrite{ContactID: it.decision.GetContactId(), Column: s.cfg.FlagColumn,
			Value: int(it.decision.GetValue()), Tag: s.cfg.WriteTag, Also: s.evidenceColumns(ctx, it.decision)}
	}
	start := time.Now()
	var results []error
	if len(writes) == 1 && s.cfg.BatchSize == 1 {
		results = []error{t.Dataverse.PatchFlag(ctx, writes[0])}
	} else {
		results, err = t.Dataverse.Batch(ctx, writes)
	}
	release()
	latency := time.Since(start)
	s.metrics.latency.Observe(latency.Seconds())
	s.metrics.batchSize.Observe(float64(len(writes)))
	if err != nil {
		// The request as a whole failed: nothing is known of its parts. A
		// 404 for the $batch itself is the endpoint's (a wrong environment
		// URL), not the contacts': set the writes aside rather than record
		// them obsolete and drop them.
		var se *dataverse.StatusError
		if errors.As(err, &se) && se.Status == http.StatusNotFound {
			for _, it := range chunk {
				it.out.Latency = durationpb.New(latency)
				it.out.Outcome, it.out.HttpStatus, it.out.Error = OutcomeFailed, int32(se.Status), "$batch request: "+se.Error()
				it.class = classBadRequest
			}
			return
		}
		s.classify(t, chunk, func(int) error { return err }, latency)
		return
	}
	s.classify(t, chunk, func(i int) error { return results[i] }, latency)
}

// classify turns each write's result into an outcome or a retry: this is
// where permanent and transient are told apart, once.
func (s *Service) classify(t *Target, chunk []*item, result func(int) error, latency time.Duration) {
	for i, it := range chunk {
		err := result(i)
		it.out.Latency = durationpb.New(latency)
		var se *dataverse.StatusError
		if !errors.As(err, &se) {
			switch {
			case err == nil:
				it.out.Outcome, it.out.HttpStatus = OutcomeWritten, 204
			case errors.Is(err, dataverse.ErrInvalidRequest):
				// The client refused to build the request: sending it again
				// would be refused again, and nothing reached Dataverse.
				it.out.Outcome, it.out.Error, it.class = OutcomeFailed, err.Error(), classBadRequest
			default:
				it.retry(transportClass(err), err)
			}
			continue
		}
		it.out.HttpStatus = int32(se.Status)
		switch {
		case se.Status == http.StatusNotFound:
			it.out.Outcome, it.out.Error, it.class = OutcomeObsolete, se.Error(), classNotFound
		case se.Status == http.StatusTooManyRequests:
			t.Throttle.Block(cmp.Or(se.RetryAfter, 5*time.Second))
			s.metrics.throttled.WithLabelValues("retry_after").Inc()
			it.retry(classThrottled, bus.Hold(se, t.Throttle.Blocked()))
		case permanentStatus(se.Status):
			it.out.Outcome, it.out.Error, it.class = OutcomeFailed, se.Error(), classBadRequest
		case se.Status == http.StatusUnauthorized || se.Status == http.StatusForbidden:
			// The application user's credentials or privileges: an admin
			// fixes them, and no decision is lost meanwhile.
			it.retry(classAuth, se)
		default:
			// 5xx, 408, 409, 423; a 503 may say when to come back.
			it.retry(classServer, bus.RetryAfter(se, se.RetryAfter))
		}
	}
}

// permanentStatus reports whether retrying a write Dataverse answered
// status to cannot help: the request itself is wrong (400, 405, 412, 413,
// 422, ...). 401 and 403 are the application user's, 404 the row's, and
// 408, 409, 423 and 429 pass.
func permanentStatus(status int) bool {
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusRequestTimeout,
		http.StatusConflict, http.StatusLocked, http.StatusTooManyRequests:
		return false
	}
	return status >= 400 && status < 500
}

// transportClass is the class of a failure without an HTTP answer.
func transportClass(err error) string {
	var re *oauth2.RetrieveError
	var ne net.Error
	switch {
	case errors.As(err, &re):
		return classToken
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return classTimeout
	}
	return classNetwork
}
