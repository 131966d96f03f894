package deadletters

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
)

// Actor is who acts: the name the admin gave (not verified: the admin API
// has shared tokens, not accounts) and the fingerprint of the token that
// authenticated the request.
type Actor struct {
	Name             string
	TokenFingerprint string
}

// Actions, the action of an audit record.
const (
	ActionRedrive = "redrive"
	ActionDiscard = "discard"
)

// Outcomes of one dead letter's redrive or discard.
const (
	OutcomeRedriven   = "redriven"
	OutcomeDiscarded  = "discarded"
	OutcomeSuperseded = "superseded"
	OutcomeNoOrigin   = "no_origin"
	OutcomeFailed     = "failed"
)

// HeaderRedrivenFrom marks a redriven message with the sequence of the
// dead letter it came from; should it be set aside again, its new dead
// letter keeps the mark.
const HeaderRedrivenFrom = "Nac-Redriven-From"

var (
	// ErrSuperseded is a redrive refused because the origin stream keeps
	// only the latest message per subject and holds a newer one (or none):
	// the old message would replace what came after it. Discard it.
	ErrSuperseded = errors.New("a newer message is on the origin subject; redriving would replace it")
	// ErrNoOrigin is a dead letter that does not say where it came from.
	ErrNoOrigin = errors.New("the dead letter names no origin subject")
)

// Outcome is what became of one dead letter.
type Outcome struct {
	Sequence      uint64 `json:"sequence"`
	Outcome       string `json:"outcome"`
	OriginSubject string `json:"originSubject,omitempty"`
	// RedrivenSequence is where a redrive stored the message again.
	RedrivenSequence uint64 `json:"redrivenSequence,omitempty"`
	Detail           string `json:"detail,omitempty"`
}

// Redrive publishes the dead letter at seq again to its origin subject,
// with its original headers (JetStream's own and the Nac-Dead-* ones
// left out) and a Nats-Msg-Id derived from the dead letter, so that a
// redrive tried twice stores it once; then it records the action in the
// audit trail and deletes the dead letter. A failure at any step leaves
// the dead letter in place, and trying again finishes the job.
func (s *Store) Redrive(ctx context.Context, seq uint64, who Actor) (Outcome, error) {
	m, err := s.read(ctx, seq)
	if err != nil {
		return Outcome{Sequence: seq}, err
	}
	l := letterOf(m)
	out := Outcome{Sequence: seq, OriginSubject: l.OriginSubject}
	if l.OriginSubject == "" {
		return out, fmt.Errorf("dead letter %d: %w", seq, ErrNoOrigin)
	}
	stored, err := s.republish(ctx, m, l)
	if err != nil {
		return out, fmt.Errorf("redrive dead letter %d: %w", seq, err)
	}
	out.Outcome, out.RedrivenSequence = OutcomeRedriven, stored
	if err := s.settle(ctx, m, l, ActionRedrive, stored, who); err != nil {
		return Outcome{Sequence: seq, OriginSubject: l.OriginSubject}, err
	}
	return out, nil
}

// Discard records the action in the audit trail and deletes the dead
// letter at seq.
func (s *Store) Discard(ctx context.Context, seq uint64, who Actor) (Outcome, error) {
	m, err := s.read(ctx, seq)
	if err != nil {
		return Outcome{Sequence: seq}, err
	}
	l := letterOf(m)
	if err := s.settle(ctx, m, l, ActionDiscard, 0, who); err != nil {
		return Outcome{Sequence: seq, OriginSubject: l.OriginSubject}, err
	}
	return Outcome{Sequence: seq, Outcome: OutcomeDiscarded, OriginSubject: l.OriginSubject}, nil
}

// republish stores the dead letter's payload on its origin subject and
// returns the sequence it was stored at.
func (s *Store) republish(ctx context.Context, m *jetstream.RawStreamMsg, l Letter) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	h := originalHeaders(m.Header)
	h.Set(HeaderRedrivenFrom, strconv.FormatUint(m.Sequence, 10))
	id := redriveID(m)
	h.Set(jetstream.MsgIDHeader, id)
	var origin jetstream.Stream
	if l.OriginStream != "" {
		var err error
		if origin, err = s.js.Stream(ctx, l.OriginStream); err != nil {
			return 0, fmt.Errorf("origin stream %s: %w", l.OriginStream, err)
		}
		// A stream that keeps the latest message per subject (decisions,
		// admin changes) would drop a newer one for the old: only while the
		// dead-lettered message is still the latest may it come back.
		if origin.CachedInfo().Config.MaxMsgsPerSubject == 1 && l.OriginSequence > 0 {
			h.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(l.OriginSequence, 10))
		}
	}
	ack, err := s.js.PublishMsg(ctx, &nats.Msg{Subject: l.OriginSubject, Data: m.Data, Header: h})
	if err == nil {
		return ack.Sequence, nil
	}
	if !wrongLastSequence(err) || origin == nil {
		return 0, fmt.Errorf("publish to %s: %w", redactedSubject(l.OriginSubject), err)
	}
	// The precondition is checked before deduplication: an earlier attempt
	// that stored the message shows as the subject's latest, with our id.
	last, gerr := origin.GetLastMsgForSubject(ctx, l.OriginSubject)
	if gerr == nil && last.Header.Get(jetstream.MsgIDHeader) == id {
		return last.Sequence, nil
	}
	return 0, ErrSuperseded
}

// redriveID is the Nats-Msg-Id of a dead letter's redrive: its sequence
// and when it was stored, unique even across a re-created stream.
func redriveID(m *jetstream.RawStreamMsg) string {
	return "redrive." + strconv.FormatUint(m.Sequence, 10) + "." + strconv.FormatInt(m.Time.UnixNano(), 10)
}

func wrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// originalHeaders are a dead letter's headers without the Nac-Dead-* ones
// and JetStream's own (Nats-Msg-Id, Nats-Expected-*, Nats-TTL, ...): the
// original publish's preconditions, which the dead letter stream already
// refused to keep, must not decide the redrive's fate.
func originalHeaders(h nats.Header) nats.Header {
	out := nats.Header{}
	for k, v := range h {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, "nats-") || strings.HasPrefix(lk, "nac-dead-") {
			continue
		}
		out[k] = append([]string(nil), v...)
	}
	return out
}

// settle records the action in the audit trail, deletes the dead letter
// and logs it. The record is deduplicated per dead letter and action, so
// a retry after a failed delete stores it once.
func (s *Store) settle(ctx context.Context, m *jetstream.RawStreamMsg, l Letter, action string, stored uint64, who Actor) error {
	rec := &eventsv1.DeadLetterAction{
		EventId: "deadletter." + action + "." + strconv.FormatUint(m.Sequence, 10) + "." + strconv.FormatInt(m.Time.UnixNano(), 10),
		Action:  action, Sequence: m.Sequence, Consumer: l.Consumer, Reason: l.Reason,
		OriginStream: l.OriginStream, OriginSequence: l.OriginSequence, OriginSubject: redactedSubject(l.OriginSubject),
		OrganizationId: l.OrganizationID, RedrivenSequence: stored,
		Actor: who.Name, TokenFingerprint: who.TokenFingerprint, ActedAt: timestamppb.New(s.now()),
	}
	if err := s.audit(ctx, rec); err != nil {
		return err
	}
	if err := s.delete(ctx, m.Sequence); err != nil {
		return err
	}
	attrs := []any{"sequence", m.Sequence, "consumer", l.Consumer, "origin_stream", l.OriginStream,
		"origin_sequence", l.OriginSequence, "origin_subject", redactedSubject(l.OriginSubject),
		"organization", l.OrganizationID, "actor_token", who.TokenFingerprint}
	if action == ActionRedrive {
		s.log.Info("dead letter redriven", append(attrs, "redriven_sequence", stored)...)
	} else {
		s.log.Info("dead letter discarded", attrs...)
	}
	return nil
}

// AuditOrganization is the organization token of the audit subject of
// actions on dead letters that name no organization.
const AuditOrganization = "all"

func (s *Store) audit(ctx context.Context, rec *eventsv1.DeadLetterAction) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	data, err := proto.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode audit record: %w", err)
	}
	org := rec.GetOrganizationId()
	if org == "" {
		org = AuditOrganization
	}
	if _, err := s.js.PublishMsg(ctx, &nats.Msg{Subject: bus.AuditSubject("deadletter", org), Data: data},
		jetstream.WithMsgID("audit."+rec.GetEventId())); err != nil {
		return fmt.Errorf("audit %s of dead letter %d: %w", rec.GetAction(), rec.GetSequence(), err)
	}
	return nil
}

// delete removes the dead letter at seq; one already gone is no error.
func (s *Store) delete(ctx context.Context, seq uint64) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	err := s.dead.DeleteMsg(ctx, seq)
	if err == nil {
		return nil
	}
	if _, gerr := s.dead.GetMsg(ctx, seq); errors.Is(gerr, jetstream.ErrMsgNotFound) {
		return nil
	}
	return fmt.Errorf("delete dead letter %d: %w", seq, err)
}
