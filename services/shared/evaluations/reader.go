package evaluations

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/memberkeys"
)

// Reader reads evaluations, their indexes, the contact's latest decision and
// its history in the audit trail, and opens sealed evidence.
type Reader struct {
	kv jetstream.KeyValue
	// index is the bucket's stream, which the lists page through.
	index            jetstream.Stream
	audit, decisions jetstream.Stream
	members          *memberkeys.Opener
}

// NewReader binds the bucket and streams bus.Declare created.
func NewReader(ctx context.Context, js jetstream.JetStream) (*Reader, error) {
	kv, err := js.KeyValue(ctx, bus.BucketEvaluations)
	if err != nil {
		return nil, fmt.Errorf("bind bucket %s: %w", bus.BucketEvaluations, err)
	}
	index, err := js.Stream(ctx, "KV_"+bus.BucketEvaluations)
	if err != nil {
		return nil, fmt.Errorf("bind the stream of bucket %s: %w", bus.BucketEvaluations, err)
	}
	audit, err := js.Stream(ctx, bus.StreamAudit)
	if err != nil {
		return nil, fmt.Errorf("bind stream %s: %w", bus.StreamAudit, err)
	}
	decisions, err := js.Stream(ctx, bus.StreamDecisions)
	if err != nil {
		return nil, fmt.Errorf("bind stream %s: %w", bus.StreamDecisions, err)
	}
	members, err := memberkeys.Bind(ctx, js)
	if err != nil {
		return nil, err
	}
	return &Reader{kv: kv, index: index, audit: audit, decisions: decisions, members: members}, nil
}

// Get returns the contact's latest evaluation; nil when it has none yet.
func (r *Reader) Get(ctx context.Context, org, contact string) (*eventsv1.Evaluation, error) {
	e, err := r.kv.Get(ctx, Key(org, contact))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the evaluation of %s: %w", contact, err)
	}
	var ev eventsv1.Evaluation
	if err := proto.Unmarshal(e.Value(), &ev); err != nil {
		return nil, fmt.Errorf("decode the evaluation of %s: %w", contact, err)
	}
	return &ev, nil
}

// GetMany reads the evaluations of contacts, a few at a time; absent ones
// are nil.
func (r *Reader) GetMany(ctx context.Context, org string, contacts []string) ([]*eventsv1.Evaluation, error) {
	out := make([]*eventsv1.Evaluation, len(contacts))
	errs := make([]error, len(contacts))
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i, c := range contacts {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i], errs[i] = r.Get(ctx, org, c)
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// LastDecision returns the contact's latest decision as NAC_DECISIONS keeps
// it; nil when none was made.
func (r *Reader) LastDecision(ctx context.Context, org, contact string) (*eventsv1.Decision, error) {
	raw, err := r.decisions.GetLastMsgForSubject(ctx, bus.DecisionSubject(org, contact))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the last decision of %s: %w", contact, err)
	}
	var d eventsv1.Decision
	if err := proto.Unmarshal(raw.Data, &d); err != nil {
		return nil, fmt.Errorf("decode the last decision of %s: %w", contact, err)
	}
	return &d, nil
}

// OpenEvidence returns the evidence of d (an evaluation's result or a
// decision) with the member's part opened. Once the member is erased the
// part is gone: erased is true and what is left is returned.
func (r *Reader) OpenEvidence(ctx context.Context, d *eventsv1.Decision) (ev *eventsv1.Evidence, erased bool, err error) {
	ev = proto.CloneOf(d.GetEvidence())
	m, err := r.members.OpenMember(ctx, d)
	switch {
	case errors.Is(err, memberkeys.ErrShredded):
		ev.Sealed = nil
		return ev, true, nil
	case err != nil:
		return nil, false, err
	case m == nil:
		return ev, false, nil
	}
	ev.MemberId, ev.EndedPosition, ev.CurrentPosition = m.GetMemberId(), m.GetEndedPosition(), m.GetCurrentPosition()
	ev.Contradicts, ev.ProfileObservedAt, ev.Sealed = m.GetContradicts(), m.GetProfileObservedAt(), nil
	ev.Features, ev.MatchWeight, ev.Candidates = m.GetFeatures(), m.GetMatchWeight(), m.GetCandidates()
	return ev, false, nil
}

// Ref is one entry of an index: the contact, and in the at-risk index the
// opportunity; Cursor is where the page after it starts.
type Ref struct {
	Contact     string
	Opportunity string
	Cursor      string
}

// MaxPage is the most entries one page holds.
const MaxPage = 200

// Page lists one index of org in the order its entries were last written,
// the entries after cursor ("": from the start), at most limit of them;
// next is the cursor of the following page, "" after the last. Each entry
// is one "next message of the index's subjects" direct get from the
// cursor's stream position on, so a page costs its own entries, never the
// whole index: the bucket keeps one message per key, and a key that went
// leaves only its marker, skipped.
func (r *Reader) Page(ctx context.Context, org, index, cursor string, limit int) (refs []Ref, next string, err error) {
	if limit < 1 || limit > MaxPage {
		return nil, "", fmt.Errorf("page limit %d: want 1-%d", limit, MaxPage)
	}
	var seq uint64 = 1
	if cursor != "" {
		n, err := strconv.ParseUint(cursor, 10, 64)
		if err != nil {
			return nil, "", fmt.Errorf("page cursor %q: not a position", cursor)
		}
		seq = n + 1
	}
	filter := "$KV." + bus.BucketEvaluations + "." + indexFilter(org, index)
	for {
		m, err := r.index.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return refs, "", nil
		}
		if err != nil {
			return nil, "", fmt.Errorf("list %s: %w", index, err)
		}
		seq = m.Sequence + 1
		if op := m.Header.Get("KV-Operation"); op == "DEL" || op == "PURGE" {
			continue
		}
		if len(refs) == limit {
			// One entry beyond the page: there is a next page.
			return refs, refs[len(refs)-1].Cursor, nil
		}
		key := strings.TrimPrefix(m.Subject, "$KV."+bus.BucketEvaluations+".")
		parts := ids(key, org, index)
		ref := Ref{Cursor: strconv.FormatUint(m.Sequence, 10)}
		switch {
		case index == IndexAtRisk && len(parts) == 2:
			ref.Opportunity, ref.Contact = parts[0], parts[1]
		case index != IndexAtRisk && len(parts) == 1:
			ref.Contact = parts[0]
		default:
			continue // not a key of this layout
		}
		refs = append(refs, ref)
	}
}
