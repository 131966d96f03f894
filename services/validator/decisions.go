package validator

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/validator/decide"
	"github.com/notatcompany/notatcompany/services/validator/state"
)

// Headers of a decision message: what the next decision is compared with,
// and the least the reads of the next decision must reflect.
const (
	headerDigest     = "Nac-Digest"
	headerUnderlying = "Nac-Underlying"
	headerFlagSeen   = "Nac-Flag-Seen"
	// The revision of the contact row the decision saw, and the positions
	// of the scope cache it read (state.Floor).
	headerContactRev = "Nac-Contact-Rev"
	headerScopeAt    = "Nac-Scope-At"
)

// streamDecisions is Decisions on the NAC_DECISIONS stream, read with
// batched direct gets where the stream allows them (one server), else a
// get per contact from the stream's leader.
type streamDecisions struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	store  *state.Store
}

func (d streamDecisions) Last(ctx context.Context, org, contact string) (*LastDecision, uint64, error) {
	ref := state.ContactRef{Org: org, ID: contact}
	got, err := d.LastOf(ctx, []state.ContactRef{ref})
	if err != nil {
		return nil, 0, err
	}
	return got[ref].Decision, got[ref].Seq, nil
}

// gets bounds the leader gets of one LastOf in flight at once.
const gets = 32

func (d streamDecisions) LastOf(ctx context.Context, refs []state.ContactRef) (map[state.ContactRef]Last, error) {
	if !d.stream.CachedInfo().Config.AllowDirect {
		return d.lastOfOneByOne(ctx, refs)
	}
	subjects := make([]string, 0, len(refs))
	bySubject := make(map[string]state.ContactRef, len(refs))
	for _, r := range refs {
		subj := bus.DecisionSubject(r.Org, r.ID)
		bySubject[subj] = r
		subjects = append(subjects, subj)
	}
	msgs, err := d.store.LastMessages(ctx, bus.StreamDecisions, subjects)
	if err != nil {
		return nil, fmt.Errorf("last decisions: %w", err)
	}
	out := make(map[state.ContactRef]Last, len(msgs))
	for _, m := range msgs {
		ref, ok := bySubject[m.Subject]
		if !ok {
			continue
		}
		last, err := lastDecision(m.Data, m.Header, m.Seq)
		if err != nil {
			return nil, err
		}
		out[ref] = last
	}
	return out, nil
}

// lastOfOneByOne reads each contact's last decision from the leader.
func (d streamDecisions) lastOfOneByOne(ctx context.Context, refs []state.ContactRef) (map[state.ContactRef]Last, error) {
	var mu sync.Mutex
	out := make(map[state.ContactRef]Last, len(refs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(gets)
	for _, r := range refs {
		g.Go(func() error {
			raw, err := d.stream.GetLastMsgForSubject(gctx, bus.DecisionSubject(r.Org, r.ID))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("last decision: %w", err)
			}
			last, err := lastDecision(raw.Data, raw.Header, raw.Sequence)
			if err != nil {
				return err
			}
			mu.Lock()
			out[r] = last
			mu.Unlock()
			return nil
		})
	}
	return out, g.Wait()
}

// lastDecision decodes a decision message stored at seq.
func lastDecision(data []byte, h nats.Header, seq uint64) (Last, error) {
	var dec eventsv1.Decision
	if err := proto.Unmarshal(data, &dec); err != nil {
		return Last{}, fmt.Errorf("decode last decision: %w", err)
	}
	flagSeen, _ := strconv.ParseInt(h.Get(headerFlagSeen), 10, 64)
	contactRev, _ := strconv.ParseUint(h.Get(headerContactRev), 10, 64)
	return Last{Seq: seq, Decision: &LastDecision{
		DecisionMeta: DecisionMeta{Digest: h.Get(headerDigest), Underlying: h.Get(headerUnderlying),
			FlagSeen: flagSeen, ContactRev: contactRev, ScopeAt: state.ParseFloor(h.Get(headerScopeAt))},
		Value: int(dec.GetValue()), Decision: &dec,
	}}, nil
}

func (d streamDecisions) Publish(ctx context.Context, dec *eventsv1.Decision, meta DecisionMeta, seq uint64) error {
	data, err := proto.Marshal(dec)
	if err != nil {
		return err
	}
	h := nats.Header{}
	h.Set(headerDigest, meta.Digest)
	h.Set(headerFlagSeen, strconv.FormatInt(meta.FlagSeen, 10))
	h.Set(headerContactRev, strconv.FormatUint(meta.ContactRev, 10))
	h.Set(headerScopeAt, meta.ScopeAt.String())
	if meta.Underlying != "" {
		h.Set(headerUnderlying, meta.Underlying)
	}
	msg := &nats.Msg{Subject: bus.DecisionSubject(dec.GetOrganizationId(), dec.GetContactId()), Data: data, Header: h}
	_, err = d.js.PublishMsg(ctx, msg, jetstream.WithMsgID(dec.GetDecisionId()), jetstream.WithExpectLastSequencePerSubject(seq))
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return ErrConflict
	}
	if err != nil {
		return fmt.Errorf("publish decision: %w", err)
	}
	return nil
}

// decided is what decide compares the next decision with (nil: none).
func (l *LastDecision) decided() *decide.Last {
	if l == nil {
		return nil
	}
	return &decide.Last{Value: l.Value, Digest: l.Digest, Underlying: l.Underlying, FlagSeen: l.FlagSeen}
}

// flagColumn is the contact's flag column as the CRM holds it.
func (s *Service) flagColumn(row *state.Row) decide.Column {
	cell := row.Cols[s.cfg.FlagColumn]
	v, _ := strconv.Atoi(cell.V)
	return decide.Column{Value: v, At: cell.At}
}
