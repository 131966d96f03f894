// Package deadletters is what an admin does with the messages the
// consumers set aside in bus.StreamDeadLetter (see bus.DeadLetter): list
// them, show one, redrive them to where they came from, or discard them.
// Every redrive and discard is logged and recorded in the audit trail
// (nac.audit.deadletter.<organization>) with who did it and when.
package deadletters

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/notatcompany/notatcompany/services/shared/bus"
)

// Letter is one dead letter as a list shows it.
type Letter struct {
	// Sequence is the dead letter's sequence in NAC_DEADLETTER, its id.
	Sequence uint64 `json:"sequence"`
	// Consumer is the durable consumer that set it aside.
	Consumer string `json:"consumer"`
	Reason   string `json:"reason"`
	// OriginStream and OriginSequence are where the message was stored
	// first; OriginSubject is the subject a redrive publishes to.
	OriginStream   string `json:"originStream,omitempty"`
	OriginSequence uint64 `json:"originSequence,omitempty"`
	OriginSubject  string `json:"originSubject"`
	// OrganizationID is the organization the origin subject names (none
	// for profile events).
	OrganizationID string `json:"organizationId,omitempty"`
	// Deliveries is how often the consumer had the message before it gave up.
	Deliveries     uint64    `json:"deliveries"`
	DeadLetteredAt time.Time `json:"deadLetteredAt"`
	// Size is the payload's size in bytes.
	Size int `json:"size"`
	// Kind is the event contract the origin subject carries (CrmChange,
	// Decision, ...), or "unknown".
	Kind string `json:"kind"`
}

// Detail is one dead letter as show tells it: the letter, the names of
// the original headers it keeps, and what its payload says, without the
// names, emails, titles or column values it may hold.
type Detail struct {
	Letter
	Headers []string `json:"headers"`
	Event   *Event   `json:"event,omitempty"`
	// DecodeError is why the payload is not a Kind, often the reason it
	// was set aside.
	DecodeError string `json:"decodeError,omitempty"`
}

// Filter picks dead letters: of one consumer, of one organization, or
// (zero) all.
type Filter struct {
	Consumer     string
	Organization string
}

func (f Filter) subject() string {
	if f.Consumer == "" {
		return "nac.deadletter.>"
	}
	return bus.DeadLetterSubject(f.Consumer)
}

func (f Filter) matches(l Letter) bool {
	return f.Organization == "" || strings.EqualFold(l.OrganizationID, f.Organization)
}

// Page is one page of a list: Next, when set, is the After of the next
// page (more may follow).
type Page struct {
	DeadLetters []Letter `json:"deadLetters"`
	Next        uint64   `json:"next,omitempty"`
}

// Paging limits.
const (
	DefaultLimit = 50
	MaxLimit     = 500
	// maxScan bounds the dead letters one call reads to fill a page whose
	// filter few match; the page then ends early with Next set.
	maxScan = 2000
)

// ErrNotFound is a sequence that holds no dead letter (never did, or
// redriven or discarded since).
var ErrNotFound = errors.New("no such dead letter")

// Store reads and handles the dead letters.
type Store struct {
	js      jetstream.JetStream
	dead    jetstream.Stream
	log     *slog.Logger
	timeout time.Duration
	now     func() time.Time
}

// New binds the dead letter stream bus.Declare created; timeout bounds
// each wait for JetStream.
func New(ctx context.Context, js jetstream.JetStream, timeout time.Duration, log *slog.Logger) (*Store, error) {
	dead, err := js.Stream(ctx, bus.StreamDeadLetter)
	if err != nil {
		return nil, fmt.Errorf("bind stream %s: %w", bus.StreamDeadLetter, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{js: js, dead: dead, log: log, timeout: timeout, now: time.Now}, nil
}

// List returns up to limit dead letters after the sequence after that
// match f, oldest first.
func (s *Store) List(ctx context.Context, f Filter, after uint64, limit int) (Page, error) {
	limit = clampLimit(limit)
	page := Page{DeadLetters: []Letter{}}
	last, err := s.scan(ctx, f, after, 0, func(m *jetstream.RawStreamMsg) bool {
		page.DeadLetters = append(page.DeadLetters, letterOf(m))
		return len(page.DeadLetters) < limit
	})
	page.Next = last
	return page, err
}

func clampLimit(limit int) int {
	if limit <= 0 {
		return DefaultLimit
	}
	return min(limit, MaxLimit)
}

// scan hands each dead letter after the sequence after (and up to upTo,
// when set) that matches f to fn until fn returns false, reading at most
// maxScan. It returns where a next scan starts: the last sequence read
// when it stopped early, 0 when it reached the end.
func (s *Store) scan(ctx context.Context, f Filter, after, upTo uint64, fn func(*jetstream.RawStreamMsg) bool) (uint64, error) {
	subject := f.subject()
	seq := after
	for range maxScan {
		m, err := s.getMsg(ctx, seq+1, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return 0, nil
		}
		if err != nil {
			return seq, fmt.Errorf("read dead letters after %d: %w", seq, err)
		}
		if upTo > 0 && m.Sequence > upTo {
			return 0, nil
		}
		seq = m.Sequence
		if f.matches(letterOf(m)) && !fn(m) {
			return seq, nil
		}
	}
	return seq, nil
}

func (s *Store) getMsg(ctx context.Context, seq uint64, opts ...jetstream.GetMsgOpt) (*jetstream.RawStreamMsg, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return s.dead.GetMsg(ctx, seq, opts...)
}

// Get returns the dead letter at seq; ErrNotFound when there is none.
func (s *Store) Get(ctx context.Context, seq uint64) (Detail, error) {
	m, err := s.read(ctx, seq)
	if err != nil {
		return Detail{}, err
	}
	d := Detail{Letter: letterOf(m), Headers: keptHeaders(m)}
	d.Event, err = decode(d.OriginSubject, m.Data)
	if err != nil {
		d.DecodeError = err.Error()
	}
	return d, nil
}

// read gets the dead letter at seq, ErrNotFound when seq is not one.
func (s *Store) read(ctx context.Context, seq uint64) (*jetstream.RawStreamMsg, error) {
	m, err := s.getMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) || err == nil && !strings.HasPrefix(m.Subject, "nac.deadletter.") {
		return nil, fmt.Errorf("dead letter %d: %w", seq, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read dead letter %d: %w", seq, err)
	}
	return m, nil
}

// letterOf reads a dead letter's Nac-Dead-* headers.
func letterOf(m *jetstream.RawStreamMsg) Letter {
	h := m.Header
	origin := h.Get(bus.HeaderDeadSubject)
	originSeq, _ := strconv.ParseUint(h.Get(bus.HeaderDeadSequence), 10, 64)
	deliveries, _ := strconv.ParseUint(h.Get(bus.HeaderDeadDeliveries), 10, 64)
	return Letter{
		Sequence: m.Sequence, Consumer: untoken(strings.TrimPrefix(m.Subject, "nac.deadletter.")),
		Reason: h.Get(bus.HeaderDeadReason), OriginStream: h.Get(bus.HeaderDeadStream), OriginSequence: originSeq,
		OriginSubject: origin, OrganizationID: organizationOf(origin), Deliveries: deliveries,
		DeadLetteredAt: m.Time.UTC(), Size: len(m.Data), Kind: kindOf(origin),
	}
}

// keptHeaders names the original headers a dead letter carries (their
// values may be anything a producer put there, so only names are shown).
func keptHeaders(m *jetstream.RawStreamMsg) []string {
	names := slices.Sorted(maps.Keys(originalHeaders(m.Header)))
	if names == nil {
		names = []string{}
	}
	return names
}

// organizationOf is the organization an origin subject names: the third
// token of nac.crm, nac.decision, nac.admin, nac.work and nac.sync
// subjects; profile and other subjects name none.
func organizationOf(subject string) string {
	parts := strings.Split(subject, ".")
	if len(parts) < 3 || parts[0] != "nac" {
		return ""
	}
	switch parts[1] {
	case "crm", "decision", "admin", "work", "sync":
		return untoken(parts[2])
	}
	return ""
}

// untoken reverses bus.Token.
func untoken(tok string) string {
	enc, ok := strings.CutPrefix(tok, "b64_")
	if !ok {
		return tok
	}
	b, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return tok
	}
	return string(b)
}

// redactedSubject is subject for logs and the audit trail: a profile
// subject's last token (a member's or company's id) becomes "*".
func redactedSubject(subject string) string {
	if !strings.HasPrefix(subject, "nac.profile.") {
		return subject
	}
	return subject[:strings.LastIndexByte(subject, '.')+1] + "*"
}
