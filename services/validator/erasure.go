package validator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
)

// ProfileEvents are the streams beyond the state that hold what profile
// sources sent about a member: the events as received and the dead
// letters of the profile consumer.
type ProfileEvents interface {
	// PurgeMember removes the member's profile events stored before seq.
	PurgeMember(ctx context.Context, memberID string, beforeSeq uint64) error
	// PurgeErasures removes the member's erasure requests up to seq.
	PurgeErasures(ctx context.Context, memberID string, throughSeq uint64) error
	// DropDeadLetters erases the member's profile events and erasure
	// requests set aside in the dead letter stream.
	DropDeadLetters(ctx context.Context, memberID string) error
}

// erase carries out an erasure everywhere the member's data is. Each step
// is idempotent and the erasure request itself goes last, so a failure at
// any point is retried from the start and finishes the job:
//  1. the state: the member's record is erased, a tombstone without the id
//     left, its index edges purged;
//  2. the contacts the member could match are re-evaluated, so that no
//     decision rests on the member any more (a flag goes back to No
//     Feedback unless other evidence stands);
//  3. the member's profile events and dead letters are erased;
//  4. the erasure is audited, without the member id;
//  5. the member's data key is destroyed: every evidence sealed with it,
//     in the decision stream, the audit trail or dead letters, is unreadable;
//  6. the erasure request is removed from the profile stream.
func (s *Service) erase(ctx context.Context, e *eventsv1.MemberErased, msg jetstream.Msg) error {
	id, who := e.GetMemberId(), Pseudonym(e.GetMemberId())
	meta, err := msg.Metadata()
	if err != nil {
		return fmt.Errorf("erasure metadata: %w", err)
	}
	affected, erased, err := s.store.EraseMember(ctx, e)
	if err != nil {
		return fmt.Errorf("erase member %s: %w", who, err)
	}
	s.counted("erasure", erased, msg)
	if err := s.evaluateAll(ctx, "erasure", affected, e.GetEventId(), redelivered(msg)); err != nil {
		return err
	}
	seq := meta.Sequence.Stream
	if err := s.events.PurgeMember(ctx, id, seq); err != nil {
		return fmt.Errorf("purge profile events of erased member %s: %w", who, err)
	}
	if err := s.events.DropDeadLetters(ctx, id); err != nil {
		return fmt.Errorf("erase dead letters of erased member %s: %w", who, err)
	}
	record := &eventsv1.MemberErased{EventId: e.GetEventId(), Source: e.GetSource(), ObservedAt: e.GetObservedAt(), ReceivedAt: e.GetReceivedAt()}
	if err := s.pub.PublishProto(ctx, bus.AuditSubject("erasure", "all"), "audit.erasure."+e.GetEventId(), record); err != nil {
		return err
	}
	if err := s.store.DestroyMemberKey(ctx, id); err != nil {
		return fmt.Errorf("destroy the data key of erased member %s: %w", who, err)
	}
	if err := s.store.ErasureDone(ctx, id); err != nil {
		return fmt.Errorf("finish erasure of member %s: %w", who, err)
	}
	if err := s.events.PurgeErasures(ctx, id, seq); err != nil {
		return fmt.Errorf("purge the erasure request of member %s: %w", who, err)
	}
	return nil
}

// profileStream is ProfileEvents on NAC_PROFILE and NAC_DEADLETTER.
type profileStream struct{ profiles, dead jetstream.Stream }

func (p profileStream) PurgeMember(ctx context.Context, memberID string, beforeSeq uint64) error {
	return p.profiles.Purge(ctx, jetstream.WithPurgeSubject(bus.ProfileMemberSubject(memberID)), jetstream.WithPurgeSequence(beforeSeq))
}

func (p profileStream) PurgeErasures(ctx context.Context, memberID string, throughSeq uint64) error {
	if throughSeq == 0 {
		return nil
	}
	return p.profiles.Purge(ctx, jetstream.WithPurgeSubject(bus.ProfileErasureSubject(memberID)), jetstream.WithPurgeSequence(throughSeq+1))
}

// DropDeadLetters reads the profile consumer's dead letters (few, as long
// as the profile source behaves) and erases those of the member, told by
// the subject they came from.
func (p profileStream) DropDeadLetters(ctx context.Context, memberID string) error {
	filter := bus.DeadLetterSubject(bus.ConsumerValidatorProfile)
	info, err := p.dead.Info(ctx, jetstream.WithSubjectFilter(filter))
	if err != nil {
		return fmt.Errorf("dead letters: %w", err)
	}
	if info.State.Subjects[filter] == 0 {
		return nil
	}
	ofMember := map[string]bool{bus.ProfileMemberSubject(memberID): true, bus.ProfileErasureSubject(memberID): true}
	cons, err := p.dead.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		return fmt.Errorf("read dead letters: %w", err)
	}
	for {
		batch, err := cons.Fetch(256, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return fmt.Errorf("read dead letters: %w", err)
		}
		n, done := 0, false
		for m := range batch.Messages() {
			n++
			meta, err := m.Metadata()
			if err != nil {
				return fmt.Errorf("dead letter metadata: %w", err)
			}
			done = meta.NumPending == 0
			if ofMember[m.Headers().Get(bus.HeaderDeadSubject)] {
				if err := p.dead.SecureDeleteMsg(ctx, meta.Sequence.Stream); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
					return fmt.Errorf("erase dead letter: %w", err)
				}
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("read dead letters: %w", err)
		}
		if done || n == 0 {
			return nil
		}
	}
}
