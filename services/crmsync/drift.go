package crmsync

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
)

// decisionRef is what drift repair needs of a contact's last decision.
type decisionRef struct {
	seq       uint64
	value     int
	id        string
	decidedAt time.Time
}

const flagIgnore = int(eventsv1.Flag_FLAG_IGNORE)

// loadDecisions reads the organization's latest decision of every contact
// (the decision stream keeps one per contact); with rewrite each is handed
// to the writer again, which writes it now that data validation is on.
func (j *job) loadDecisions(ctx context.Context, rewrite bool) error {
	subject := "nac.decision." + bus.Token(j.org) + ".*"
	cons, err := j.s.js.OrderedConsumer(ctx, bus.StreamDecisions, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return fmt.Errorf("read decisions: %w", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return fmt.Errorf("read decisions: %w", err)
	}
	want := int(info.NumPending)
	for got := 0; got < want; {
		batch, err := cons.Fetch(min(want-got, 1000), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return fmt.Errorf("read decisions: %w", err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			if err := j.noteDecision(ctx, msg, rewrite); err != nil {
				return err
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return fmt.Errorf("read decisions: %w", err)
		}
		if n == 0 {
			break // fewer than counted: some were replaced meanwhile
		}
		got += n
		if err := j.save(ctx, false); err != nil {
			return err
		}
	}
	return nil
}

func (j *job) noteDecision(ctx context.Context, msg jetstream.Msg, rewrite bool) error {
	meta, err := msg.Metadata()
	if err != nil {
		return err
	}
	var d eventsv1.Decision
	if err := proto.Unmarshal(msg.Data(), &d); err != nil || d.GetContactId() == "" {
		return nil // the writer sets such a one aside; nothing to compare
	}
	j.decisions[d.GetContactId()] = decisionRef{seq: meta.Sequence.Stream, value: int(d.GetValue()), id: d.GetDecisionId(),
		decidedAt: d.GetDecidedAt().AsTime()}
	if !rewrite || d.GetValue() == eventsv1.Flag_FLAG_IGNORE {
		return nil
	}
	ok, err := j.s.republish(ctx, msg.Subject(), msg.Data(), msg.Headers(), meta.Sequence.Stream, "rewrite."+j.st.JobID)
	if err != nil {
		return err
	}
	if ok {
		j.rewritten[d.GetContactId()] = true
		j.st.DecisionsRewritten++
	}
	return nil
}

// republish hands a contact's last decision (at seq) to the writer again
// by storing it once more as the latest; false when a newer decision came
// along meanwhile (the writer writes that one).
func (s *Service) republish(ctx context.Context, subject string, data []byte, header nats.Header, seq uint64, why string) (bool, error) {
	h := nats.Header{}
	for k, v := range header {
		if strings.HasPrefix(k, "Nac-") {
			h[k] = v
		}
	}
	_, err := s.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: data, Header: h},
		jetstream.WithMsgID(why+"."+strconv.FormatUint(seq, 10)), jetstream.WithExpectLastSequencePerSubject(seq))
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("hand decision to the writer again: %w", err)
	}
	return true, nil
}

// drift compares a contact row's flag column with our last decision. A
// person's Ignore is theirs (the validator respects it). A person's 0 or 1
// after our decision is recorded with who and when; the validator restores
// our decision or keeps theirs, as the organization's rule says, when the
// row reaches it. A value that differs though no person changed the row
// since our decision is a write that never landed, or was undone by a
// restore: the decision is handed to the writer again.
func (j *job) drift(ctx context.Context, row map[string]any, info rowInfo, foundBy string) error {
	d, ok := j.decisions[info.id]
	if !ok || j.rewritten[info.id] {
		return nil
	}
	f := flagOf(row, j.s.cfg.Columns.Flag)
	if f == d.value || d.value == flagIgnore || f == flagIgnore {
		return nil
	}
	if !info.modifiedOn.IsZero() && info.modifiedOn.After(d.decidedAt) && info.modifiedBy != "" && info.modifiedBy != j.appUser {
		action := "restore"
		if j.keep {
			action = "keep"
		}
		j.st.Overrides++
		return j.s.auditOverride(ctx, j.org, info.id, f, d, info.modifiedBy, info.modifiedOn, action, foundBy)
	}
	// Off: nothing is written; still with the writer: not lost.
	if !j.dvOn || d.seq > j.writerFloor {
		return nil
	}
	raw, err := j.s.decisionStream.GetLastMsgForSubject(ctx, bus.DecisionSubject(j.org, info.id))
	if err != nil {
		return fmt.Errorf("read last decision: %w", err)
	}
	if raw.Sequence != d.seq {
		return nil // a newer decision is on its way
	}
	ok, err = j.s.republish(ctx, raw.Subject, raw.Data, raw.Header, raw.Sequence, "drift."+j.st.JobID)
	if err != nil || !ok {
		return err
	}
	j.rewritten[info.id] = true
	j.st.DecisionsRewritten++
	j.s.m.drift.WithLabelValues("lost_write", "write_again").Inc()
	return nil
}

// auditOverride records a person's value of the flag over our decision.
func (s *Service) auditOverride(ctx context.Context, org, contact string, value int, d decisionRef, user string, at time.Time, action, foundBy string) error {
	s.m.drift.WithLabelValues("person_override", action).Inc()
	ev := &eventsv1.FlagOverride{
		EventId:        fmt.Sprintf("override.%s.%s.%d.%d", org, contact, at.Unix(), value),
		OrganizationId: org, ContactId: contact, Value: eventsv1.Flag(value), Decided: eventsv1.Flag(d.value),
		DecisionId: d.id, UserId: user, Action: action, FoundBy: foundBy, RecordedAt: timestamppb.New(s.now()),
	}
	if !at.IsZero() {
		ev.ChangedAt = timestamppb.New(at)
	}
	data, err := proto.Marshal(ev)
	if err != nil {
		return err
	}
	if _, err := s.js.PublishMsg(ctx, &nats.Msg{Subject: bus.AuditSubject("override", org), Data: data}, jetstream.WithMsgID(ev.GetEventId())); err != nil {
		return fmt.Errorf("audit override: %w", err)
	}
	return nil
}
