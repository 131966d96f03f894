package evaluations

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
)

// The audit trail's subjects are per organization (nac.audit.<kind>.<org>),
// not per contact: a contact's history is found by reading the
// organization's records, newest windows first, within a budget.

// Audit record kinds a contact's history holds.
const (
	KindDecision = "decision"
	KindWrite    = "write"
	KindOverride = "override"
	KindReview   = "review"
)

// Entry is one audit record of the contact.
type Entry struct {
	Kind     string
	Sequence uint64
	At       time.Time // when the audit trail stored it
	Decision *eventsv1.Decision
	Write    *eventsv1.WriteOutcome
	Override *eventsv1.FlagOverride
	Review   *eventsv1.ReviewAction
}

// History is the contact's newest audit records, oldest first.
type History struct {
	Entries []Entry
	// Scanned is how many of the organization's records were read, From
	// the oldest time read back to.
	Scanned int
	From    time.Time
	// Complete: nothing older of the contact's is left unread in the trail.
	Complete bool
}

// HistoryOptions bound a history read.
type HistoryOptions struct {
	Limit   int // entries kept, the newest
	MaxScan int // organization records read at most
	// Windows are how far back each pass reads, growing; the last one is
	// the trail's age (400 days by default).
	Windows []time.Duration
	Now     time.Time
}

// DefaultHistory reads at most 20,000 records to find a contact's last 20.
func DefaultHistory(now time.Time) HistoryOptions {
	day := 24 * time.Hour
	return HistoryOptions{Limit: 20, MaxScan: 20000, Now: now,
		Windows: []time.Duration{time.Hour, day, 7 * day, 30 * day, 90 * day, 400 * day}}
}

// With returns o keeping limit entries and reading maxScan records at most.
func (o HistoryOptions) With(limit, maxScan int) HistoryOptions {
	o.Limit, o.MaxScan = limit, maxScan
	return o
}

// History reads the contact's newest decision, write, override and review
// records. Each pass reads one window further back than the last, until
// enough entries are found, the trail's age is reached, or the budget is
// spent; a window holding more than the budget left is narrowed to its
// newest part, and the history is then not complete.
func (r *Reader) History(ctx context.Context, org, contact string, o HistoryOptions) (History, error) {
	h := History{Complete: true}
	filter := "nac.audit.*." + bus.Token(org)
	var end time.Time // the newer edge of the window; zero: now
	newer := 0        // the records from end on, read by the passes before
	for _, w := range o.Windows {
		start := o.Now.Add(-w)
		if !end.IsZero() && !start.Before(end) {
			continue
		}
		c, total, err := r.openAt(ctx, filter, start)
		if err != nil {
			return h, err
		}
		left := o.MaxScan - h.Scanned
		for tries := 0; total-newer > left && tries < 16; tries++ {
			h.Complete = false
			r.close(c)
			edge := end
			if edge.IsZero() {
				edge = o.Now
			}
			start = start.Add(edge.Sub(start) / 2)
			if c, total, err = r.openAt(ctx, filter, start); err != nil {
				return h, err
			}
		}
		got, read, err := readWindow(ctx, c, min(total-newer, left), end, contact)
		r.close(c)
		if err != nil {
			return h, err
		}
		h.Scanned += read
		h.From = start
		h.Entries = append(got, h.Entries...)
		if !h.Complete || len(h.Entries) >= o.Limit {
			h.Complete = false
			break
		}
		end, newer = start, total
	}
	slices.SortFunc(h.Entries, func(a, b Entry) int { return cmp.Compare(a.Sequence, b.Sequence) })
	if len(h.Entries) > o.Limit {
		h.Entries = h.Entries[len(h.Entries)-o.Limit:]
		h.Complete = false
	}
	return h, nil
}

// openAt creates a one-shot consumer of the filter's records from start on,
// and says how many it holds.
func (r *Reader) openAt(ctx context.Context, filter string, start time.Time) (jetstream.Consumer, int, error) {
	c, err := r.audit.CreateConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubject: filter, DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &start,
		AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: 30 * time.Second, MemoryStorage: true, Replicas: 1,
		Description: "explain: one contact's history",
	})
	if err != nil {
		return nil, 0, fmt.Errorf("read the audit trail: %w", err)
	}
	return c, int(c.CachedInfo().NumPending), nil
}

// close deletes a one-shot consumer; one left behind goes by itself.
func (r *Reader) close(c jetstream.Consumer) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = r.audit.DeleteConsumer(ctx, c.CachedInfo().Name)
}

// readWindow reads up to n records, stopping at the first stored at or
// after end, and keeps the contact's.
func readWindow(ctx context.Context, c jetstream.Consumer, n int, end time.Time, contact string) ([]Entry, int, error) {
	var out []Entry
	read := 0
	for read < n {
		got, done, err := fetchInto(ctx, c, min(n-read, 500), end, contact, &out)
		read += got
		if err != nil || done || got == 0 {
			return out, read, err
		}
	}
	return out, read, nil
}

// fetchInto fetches one batch of up to n records into out; done: a record
// at or after end was reached.
func fetchInto(ctx context.Context, c jetstream.Consumer, n int, end time.Time, contact string, out *[]Entry) (got int, done bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	batch, err := c.Fetch(n, jetstream.FetchContext(ctx))
	if err != nil {
		return 0, false, fmt.Errorf("read the audit trail: %w", err)
	}
	for m := range batch.Messages() {
		got++
		meta, err := m.Metadata()
		if err != nil {
			return got, false, fmt.Errorf("audit record metadata: %w", err)
		}
		if !end.IsZero() && !meta.Timestamp.Before(end) {
			return got, true, nil
		}
		if e, ok := entryOf(m.Subject(), m.Data(), contact); ok {
			e.Sequence, e.At = meta.Sequence.Stream, meta.Timestamp
			*out = append(*out, e)
		}
	}
	if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
		return got, false, fmt.Errorf("read the audit trail: %w", err)
	}
	return got, false, nil
}

// entryOf decodes an audit record when it is of the contact.
func entryOf(subject string, data []byte, contact string) (Entry, bool) {
	kind := kindOf(subject)
	e := Entry{Kind: kind}
	var m interface {
		proto.Message
		GetContactId() string
	}
	switch kind {
	case KindDecision:
		e.Decision = &eventsv1.Decision{}
		m = e.Decision
	case KindWrite:
		e.Write = &eventsv1.WriteOutcome{}
		m = e.Write
	case KindOverride:
		e.Override = &eventsv1.FlagOverride{}
		m = e.Override
	case KindReview:
		e.Review = &eventsv1.ReviewAction{}
		m = e.Review
	default:
		return e, false
	}
	if proto.Unmarshal(data, m) != nil || m.GetContactId() != contact {
		return e, false
	}
	return e, true
}

// kindOf is the <kind> of nac.audit.<kind>.<org>.
func kindOf(subject string) string {
	const prefix = "nac.audit."
	if len(subject) <= len(prefix) {
		return ""
	}
	rest := subject[len(prefix):]
	for i := range len(rest) {
		if rest[i] == '.' {
			return rest[:i]
		}
	}
	return ""
}
