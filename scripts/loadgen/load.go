package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
)

// flight is one flip on its way: the event that moves contact to want,
// matched to its decision and its write through the audit stream.
type flight struct {
	leg       int
	contact   int
	want      eventsv1.Flag
	scheduled time.Time // when the open-loop schedule said to send it
	accepted  time.Time // ingest's 202
	decided   time.Time // the decision's audit record seen
	written   time.Time // the write's audit record seen
}

// audit watches the audit stream and settles flights: a contact has at
// most one flight at a time, so a record for the contact with the value
// the flight wants is that flight's.
type audit struct {
	pop population
	sub *nats.Subscription

	mu       sync.Mutex
	inFlight map[string]*flight // by contact id
	done     chan *flight
	failures atomic.Int64 // writes with another outcome than written
	written  atomic.Int64 // every write recorded, flights or not
}

func watchAudit(nc *nats.Conn, pop population) (*audit, error) {
	a := &audit{pop: pop, inFlight: map[string]*flight{}, done: make(chan *flight, 1<<16)}
	sub, err := nc.Subscribe("nac.audit.>", a.record)
	if err != nil {
		return nil, fmt.Errorf("subscribe to the audit stream: %w", err)
	}
	// A burst of a fan-out must not be dropped as a slow consumer.
	if err := sub.SetPendingLimits(1<<20, 1<<30); err != nil {
		return nil, err
	}
	a.sub = sub
	return a, nc.Flush()
}

func (a *audit) record(m *nats.Msg) {
	now := time.Now()
	switch {
	case strings.HasPrefix(m.Subject, "nac.audit.decision."):
		var d eventsv1.Decision
		if proto.Unmarshal(m.Data, &d) != nil {
			return
		}
		a.mu.Lock()
		if f := a.inFlight[d.GetContactId()]; f != nil && f.want == d.GetValue() && f.decided.IsZero() {
			f.decided = now
		}
		a.mu.Unlock()
	case strings.HasPrefix(m.Subject, "nac.audit.write."):
		var w eventsv1.WriteOutcome
		if proto.Unmarshal(m.Data, &w) != nil {
			return
		}
		if w.GetOutcome() != "written" {
			a.failures.Add(1)
			return
		}
		a.written.Add(1)
		a.mu.Lock()
		f := a.inFlight[w.GetContactId()]
		if f != nil && f.want == w.GetValue() {
			delete(a.inFlight, w.GetContactId())
			f.written = now
		} else {
			f = nil
		}
		a.mu.Unlock()
		if f != nil {
			a.done <- f
		}
	}
}

func (a *audit) track(id string, f *flight) {
	a.mu.Lock()
	a.inFlight[id] = f
	a.mu.Unlock()
}

func (a *audit) forget(id string) {
	a.mu.Lock()
	delete(a.inFlight, id)
	a.mu.Unlock()
}

func (a *audit) outstanding() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.inFlight)
}

// legResult is what one rate measured.
type legResult struct {
	Contacts            int
	Rate                int
	Sent, Matched, Lost int
	NoFreeContact       int
	SendErrors          int
	Achieved            float64 // flips written per second
	P50, P95, P99, Max  time.Duration
	DecideP50           time.Duration // scheduled send → decision audited
	AcceptP50           time.Duration // scheduled send → 202
	CPUPerEvent         time.Duration // of the stack's process, per flip written
	RSS, Heap           float64
	Shares              map[string]float64 // of the CPU, by service (with a profile)
}

// loader sends flips at a fixed open-loop rate.
type loader struct {
	c       *client
	a       *audit
	free    chan int // contacts with no flip in flight
	flipped []bool   // by contact: moved away at the last flip
	legs    int
}

func newLoader(c *client, a *audit, contacts int) *loader {
	l := &loader{c: c, a: a, free: make(chan int, contacts), flipped: make([]bool, contacts)}
	for i := range contacts {
		l.free <- i
	}
	return l
}

// grown is a loader of more contacts that goes on from l: the contacts l
// flipped are where l left them.
func (l *loader) grown(contacts int) *loader {
	g := newLoader(l.c, l.a, contacts)
	copy(g.flipped, l.flipped)
	return g
}

// leg sends rate flips a second for d, open loop: each at its scheduled
// time whatever the answers so far, and waits up to drain for the writes.
func (l *loader) leg(ctx context.Context, rate int, d, drain time.Duration) (legResult, error) {
	res := legResult{Rate: rate, Contacts: cap(l.free)}
	l.legs++
	cur := l.legs
	before, err := scrapeProcess(ctx, l.c.stack.Ops)
	if err != nil {
		return res, err
	}
	total := int(float64(rate) * d.Seconds())
	interval := time.Duration(float64(time.Second) / float64(rate))
	var wg sync.WaitGroup
	var sendErrors atomic.Int64
	var firstErr atomic.Pointer[error]
	inflight := make(chan struct{}, 4096)
	// Matched flights give their contact back at once, while sending goes on.
	var flights []*flight
	collected := make(chan struct{})
	stopCollect := make(chan struct{})
	var sent atomic.Int64
	go func() {
		defer close(collected)
		for {
			select {
			case f := <-l.a.done:
				l.free <- f.contact
				if f.leg == cur { // not a late one of an earlier leg
					flights = append(flights, f)
				}
			case <-stopCollect:
				for {
					select {
					case f := <-l.a.done:
						l.free <- f.contact
						if f.leg == cur {
							flights = append(flights, f)
						}
					default:
						return
					}
				}
			}
		}
	}()
	start := time.Now()
	for i := range total {
		at := start.Add(time.Duration(i) * interval)
		if wait := time.Until(at); wait > 0 {
			time.Sleep(wait)
		}
		var contact int
		select {
		case contact = <-l.free:
		default:
			res.NoFreeContact++
			continue
		}
		select {
		case inflight <- struct{}{}:
		default:
			res.NoFreeContact++ // the stack holds 4096 requests already
			l.free <- contact
			continue
		}
		res.Sent++
		sent.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-inflight }()
			if err := l.send(ctx, cur, contact, at); err != nil {
				sendErrors.Add(1)
				firstErr.CompareAndSwap(nil, &err)
				l.free <- contact
			}
		}()
	}
	sendEnd := time.Now()
	answered := make(chan struct{})
	go func() { wg.Wait(); close(answered) }()
	deadline := time.Now().Add(d/2 + drain)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		select {
		case <-answered:
			if l.a.outstanding() == 0 {
				deadline = time.Now()
			}
		default:
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(stopCollect)
	<-collected
	wg.Wait()
	after, err := scrapeProcess(ctx, l.c.stack.Ops)
	if err != nil {
		return res, err
	}
	res.SendErrors = int(sendErrors.Load())
	if e := firstErr.Load(); e != nil && res.SendErrors > res.Sent/100 {
		return res, fmt.Errorf("%d of %d sends failed, first: %w", res.SendErrors, res.Sent, *e)
	}
	res.Matched = len(flights)
	res.Lost = res.Sent - res.Matched - res.SendErrors
	l.reclaim()
	res.RSS, res.Heap = after.RSSBytes, after.HeapBytes
	if res.Matched == 0 {
		return res, nil
	}
	var last time.Time
	lat := make([]time.Duration, 0, len(flights))
	var decide, accept []time.Duration
	for _, f := range flights {
		lat = append(lat, f.written.Sub(f.scheduled))
		if !f.decided.IsZero() {
			decide = append(decide, f.decided.Sub(f.scheduled))
		}
		accept = append(accept, f.accepted.Sub(f.scheduled))
		if f.written.After(last) {
			last = f.written
		}
	}
	span := max(last.Sub(start), sendEnd.Sub(start))
	res.Achieved = float64(res.Matched) / span.Seconds()
	res.P50, res.P95, res.P99, res.Max = pct(lat, 0.50), pct(lat, 0.95), pct(lat, 0.99), pct(lat, 1)
	res.DecideP50, res.AcceptP50 = pct(decide, 0.5), pct(accept, 0.5)
	res.CPUPerEvent = time.Duration((after.CPUSeconds - before.CPUSeconds) / float64(res.Matched) * 1e9)
	return res, nil
}

// reclaim stops waiting for the flights never matched (lost): their
// contacts' state is unknown, so they are not used again.
func (l *loader) reclaim() {
	l.a.mu.Lock()
	clear(l.a.inFlight)
	l.a.mu.Unlock()
}

// send posts the flip of contact and tracks it.
// Only this goroutine touches the contact until its flight is matched.
func (l *loader) send(ctx context.Context, leg, contact int, at time.Time) error {
	left := !l.flipped[contact]
	want := eventsv1.Flag_FLAG_NO_FEEDBACK
	if left {
		want = eventsv1.Flag_FLAG_NOT_AT_COMPANY
	}
	l.flipped[contact] = left
	f := &flight{leg: leg, contact: contact, want: want, scheduled: at}
	id := l.c.pop.contactID(contact)
	l.a.track(id, f)
	ev := l.c.pop.profileEvent(contact, fmt.Sprintf("lg-%s-%d", l.c.pop.run, l.c.flips.Add(1)), left, time.Now())
	err := l.c.profiles(ctx, ev)
	l.a.mu.Lock()
	f.accepted = time.Now() // read only after every send returned
	l.a.mu.Unlock()
	if err != nil {
		l.a.forget(id)
		l.flipped[contact] = !left
		return err
	}
	return nil
}

func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p)]
}
