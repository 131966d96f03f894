package validator

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/validator/decide"
	"github.com/notatcompany/notatcompany/services/validator/state"
)

// Headers of a decision message: what the next decision is compared with.
const (
	headerDigest     = "Nac-Digest"
	headerUnderlying = "Nac-Underlying"
	headerFlagSeen   = "Nac-Flag-Seen"
)

// streamDecisions is Decisions on the NAC_DECISIONS stream.
type streamDecisions struct {
	js     jetstream.JetStream
	stream jetstream.Stream
}

func (d streamDecisions) Last(ctx context.Context, org, contact string) (*LastDecision, uint64, error) {
	raw, err := d.stream.GetLastMsgForSubject(ctx, bus.DecisionSubject(org, contact))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("last decision: %w", err)
	}
	var dec eventsv1.Decision
	if err := proto.Unmarshal(raw.Data, &dec); err != nil {
		return nil, 0, fmt.Errorf("decode last decision: %w", err)
	}
	flagSeen, _ := strconv.ParseInt(raw.Header.Get(headerFlagSeen), 10, 64)
	return &LastDecision{
		DecisionMeta: DecisionMeta{Digest: raw.Header.Get(headerDigest), Underlying: raw.Header.Get(headerUnderlying), FlagSeen: flagSeen},
		Value:        int(dec.GetValue()), Decision: &dec,
	}, raw.Sequence, nil
}

func (d streamDecisions) Publish(ctx context.Context, dec *eventsv1.Decision, meta DecisionMeta, seq uint64) error {
	data, err := proto.Marshal(dec)
	if err != nil {
		return err
	}
	h := nats.Header{}
	h.Set(headerDigest, meta.Digest)
	h.Set(headerFlagSeen, strconv.FormatInt(meta.FlagSeen, 10))
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
