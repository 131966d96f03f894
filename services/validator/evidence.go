package validator

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/validator/state"
)

// A decision's evidence says what the member's profile says: personal data
// that outlives the member in the audit trail (kept 400 days) unless it is
// sealed. So the member's part travels only sealed with the member's data
// key (see state.Seal), and an erasure destroys the key.

// ErrShredded means the member behind the evidence was erased.
var ErrShredded = state.ErrShredded

// evidenceAAD binds sealed evidence to its decision's organization and
// contact: it cannot be moved to another decision.
func evidenceAAD(org, contact string) []byte { return []byte(org + "|" + contact) }

// seal moves the member's part of the evidence into e.Sealed.
func (s *Service) seal(ctx context.Context, org, contact string, e *eventsv1.Evidence) error {
	if e.GetMemberId() == "" {
		return nil
	}
	data, err := proto.Marshal(&eventsv1.MemberEvidence{
		MemberId: e.GetMemberId(), EndedPosition: e.GetEndedPosition(), CurrentPosition: e.GetCurrentPosition(),
		Contradicts: e.GetContradicts(), ProfileObservedAt: e.GetProfileObservedAt(),
		Features: e.GetFeatures(), MatchWeight: e.GetMatchWeight(), Candidates: e.GetCandidates(),
	})
	if err != nil {
		return fmt.Errorf("encode member evidence: %w", err)
	}
	sealed, err := s.store.Seal(ctx, e.GetMemberId(), data, evidenceAAD(org, contact))
	if err != nil {
		return fmt.Errorf("seal evidence: %w", err)
	}
	e.MemberId, e.EndedPosition, e.CurrentPosition, e.Contradicts, e.ProfileObservedAt = "", nil, nil, nil, nil
	e.Features, e.MatchWeight, e.Candidates = nil, 0, nil
	e.Sealed = sealed
	return nil
}

// OpenEvidence returns d's evidence with the member's part opened: all the
// decision rested on, for as long as the member is not erased. After the
// erasure it returns what is left with an error that is ErrShredded.
func (s *Service) OpenEvidence(ctx context.Context, d *eventsv1.Decision) (*eventsv1.Evidence, error) {
	e := proto.CloneOf(d.GetEvidence())
	if e == nil || e.GetSealed() == nil {
		return e, nil
	}
	data, err := s.store.Open(ctx, e.GetSealed(), evidenceAAD(d.GetOrganizationId(), d.GetContactId()))
	if err != nil {
		return e, err
	}
	var m eventsv1.MemberEvidence
	if err := proto.Unmarshal(data, &m); err != nil {
		return e, fmt.Errorf("decode member evidence: %w", err)
	}
	e.MemberId, e.EndedPosition, e.CurrentPosition = m.GetMemberId(), m.GetEndedPosition(), m.GetCurrentPosition()
	e.Contradicts, e.ProfileObservedAt, e.Sealed = m.GetContradicts(), m.GetProfileObservedAt(), nil
	e.Features, e.MatchWeight, e.Candidates = m.GetFeatures(), m.GetMatchWeight(), m.GetCandidates()
	return e, nil
}
