package validator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/validator/decide"
	"github.com/notatcompany/notatcompany/services/validator/state"
)

// evaluateAll evaluates the affected contacts: itself when they are few,
// through the work queue in chunks when they are many, so that one account
// with 50,000 contacts never holds its stream.
func (s *Service) evaluateAll(ctx context.Context, kind string, refs []state.ContactRef, cause string, redelivered bool) error {
	return s.evaluateFor(ctx, refs, trigger{kind: kind, cause: cause, redelivered: redelivered})
}

// trigger is what an evaluation is for: the kind and id of the event, and
// the least the scope cache must reflect (what the event changed there).
// again marks the pass that settles a change of the scope cache's sources.
type trigger struct {
	kind, cause string
	redelivered bool
	floor       state.Floor
	again       bool
}

func (s *Service) evaluateFor(ctx context.Context, refs []state.ContactRef, t trigger) error {
	refs = uniq(refs)
	s.metrics.fanout.WithLabelValues(t.kind).Observe(float64(len(refs)))
	if len(refs) > s.cfg.InlineFanout {
		return s.enqueue(ctx, t, refs)
	}
	return s.evaluateMany(ctx, refs, t, nil)
}

// groupsInFlight bounds the groups of one batch read and decided at once:
// a group mostly waits on JetStream round trips.
const groupsInFlight = 4

// evaluateMany evaluates contacts a group at a time, several groups
// concurrently; progress is called as evaluations complete.
func (s *Service) evaluateMany(ctx context.Context, refs []state.ContactRef, t trigger, progress func()) error {
	var groups [][]state.ContactRef
	for i := 0; i < len(refs); i += groupSize {
		groups = append(groups, refs[i:min(i+groupSize, len(refs))])
	}
	return forEach(ctx, groups, groupsInFlight, func(ctx context.Context, group []state.ContactRef) error {
		return s.evaluateGroup(ctx, group, t, progress)
	})
}

func (s *Service) enqueue(ctx context.Context, t trigger, refs []state.ContactRef) error {
	byOrg := map[string][]string{}
	for _, r := range refs {
		byOrg[r.Org] = append(byOrg[r.Org], r.ID)
	}
	pass := ""
	if t.again {
		pass = ".again" // chunks of their own, not duplicates of the first
	}
	for org, ids := range byOrg {
		slices.Sort(ids) // the same chunks, and ids, on a redelivery
		for i := 0; i < len(ids); i += s.cfg.ChunkSize {
			chunk := ids[i:min(i+s.cfg.ChunkSize, len(ids))]
			id := fmt.Sprintf("%s.%s.%s.%d%s", t.cause, t.kind, org, i/s.cfg.ChunkSize, pass)
			req := &eventsv1.EvaluateRequest{RequestId: id, OrganizationId: org, ContactIds: chunk, Kind: t.kind, CauseEventId: t.cause}
			if err := s.pub.PublishProto(ctx, bus.WorkSubject(org), "work."+id, req); err != nil {
				return err
			}
		}
	}
	return nil
}

// publishesInFlight bounds the decisions of one group published at once.
const publishesInFlight = 16

// Outcomes of deciding one contact.
type outcome int

const (
	settled   outcome = iota // nothing (more) to publish, the evaluation kept
	published                // published: check it still stands, then keep it
	contended                // another replica published or kept first: again
)

// evaluateGroup decides a group of contacts and publishes each decision
// that differs from the last one. A publish names the last decision it
// replaces: if another replica published first, the contact is decided
// again on the state as it now stands. After publishing, it asks whether
// anything the decision rested on changed meanwhile, and decides again
// those whose reads did, so that a decision made on a state that changed
// is corrected at once; the others' evaluations are kept as they were
// published.
func (s *Service) evaluateGroup(ctx context.Context, refs []state.ContactRef, t trigger, progress func()) error {
	s.metrics.evaluations.WithLabelValues(t.kind).Add(float64(len(refs)))
	var mu sync.Mutex
	// The decision each contact published here, if any: a correction
	// counts as one, and its sealed evidence is kept without sealing again.
	publishedHere := map[state.ContactRef]*decided{}
	pending := refs
	for range 6 {
		snap, err := s.readGroup(ctx, pending, t.floor)
		if err != nil {
			return err
		}
		var again []state.ContactRef
		var check []*decided
		if err := forEach(ctx, pending, publishesInFlight, func(ctx context.Context, ref state.ContactRef) error {
			mu.Lock()
			before := publishedHere[ref]
			mu.Unlock()
			ev, err := s.evaluation(ctx, snap, ref)
			if err != nil || ev == nil {
				return err // nil: not stored (yet)
			}
			d, out, err := s.decideAndPublish(ctx, ev, t, before)
			if err != nil {
				return fmt.Errorf("evaluate contact %s: %w", ref.ID, err)
			}
			mu.Lock()
			defer mu.Unlock()
			switch out {
			case contended:
				again = append(again, ref)
			case published:
				publishedHere[ref] = d
				check = append(check, d)
			}
			return nil
		}); err != nil {
			return err
		}
		changed, err := s.changedSince(ctx, check)
		if err != nil {
			return err
		}
		// A decision whose reads still stand is settled: its evaluation
		// is kept as it was decided.
		kept, err := s.keepPublished(ctx, check, changed)
		if err != nil {
			return err
		}
		if progress != nil {
			for range len(pending) - len(again) - len(changed) - len(kept) {
				progress()
			}
		}
		pending = append(append(again, changed...), kept...)
		if len(pending) == 0 {
			return nil
		}
	}
	return errors.New("decision still contended; will retry")
}

// decided is a contact's evaluation and what was decided on it.
type decided struct {
	ev     *evaluation
	kept   evaluated
	sealed *sealedEvidence
}

// decideAndPublish decides one contact on its evaluation, and publishes
// the decision when it is worth it, else keeps the evaluation (before:
// what an earlier attempt of this evaluation published).
func (s *Service) decideAndPublish(ctx context.Context, ev *evaluation, t trigger, before *decided) (*decided, outcome, error) {
	res, evidence, candidate, review, err := s.reviewed(ctx, ev.ref, decide.Evaluate(ev.in))
	if err != nil {
		return nil, settled, err
	}
	dd := &decided{ev: ev, kept: evaluated{ref: ev.ref, res: res, in: ev.in, scope: ev.path, evidence: evidence, candidate: candidate,
		review: review, flag: ev.row.Cols[s.cfg.FlagColumn], last: ev.last, cause: t.cause, read: ev.kept}}
	if before != nil {
		dd.kept.sealed = before.sealed
	}
	if !decide.WorthPublishing(res, ev.last.decided(), s.flagColumn(ev.row), ev.settings.KeepPersonOverride) {
		if t.redelivered && before == nil && ev.last != nil && ev.last.Decision.GetCauseEventId() == t.cause {
			// An earlier attempt published this decision and may have
			// failed before its audit record was stored.
			if err := s.audit(ctx, ev.last.Decision); err != nil {
				return nil, settled, err
			}
		}
		err := s.keep(ctx, dd.kept)
		if errors.Is(err, errEvaluationConflict) {
			return dd, contended, nil
		}
		return dd, settled, err
	}
	if before != nil {
		s.metrics.corrections.Inc()
	}
	d := s.decision(ev.ref, res, ev.last, ev.in.Contact.Flag, ev.seq, t.cause)
	if review != nil && res.Value == decide.NotAtCompany {
		d.Reviewer = review.GetReviewer()
	}
	plain := proto.CloneOf(d.Evidence)
	if err := s.seal(ctx, ev.ref.Org, ev.ref.ID, d.Evidence); err != nil {
		return nil, settled, err
	}
	dd.sealed = &sealedEvidence{plain: plain, sealed: d.Evidence}
	meta := DecisionMeta{Digest: res.Digest(), Underlying: res.Underlying, FlagSeen: ev.row.Cols[s.cfg.FlagColumn].At,
		ContactRev: ev.contactRev, ScopeAt: ev.scopeAt}
	err = s.decisions.Publish(ctx, d, meta, ev.seq)
	if errors.Is(err, ErrConflict) {
		s.metrics.conflicts.Inc()
		return dd, contended, nil
	}
	if err != nil {
		return nil, settled, err
	}
	if err := s.audit(ctx, d); err != nil {
		return nil, settled, err
	}
	s.metrics.decisions.WithLabelValues(strconv.Itoa(res.Value), res.Reason).Inc()
	s.logDecision(t.kind, d)
	// What is kept of it is the evaluation as published: its decision is
	// the last one now.
	dd.kept.last = &LastDecision{DecisionMeta: meta, Value: res.Value, Decision: d}
	dd.kept.sealed = dd.sealed
	return dd, published, nil
}

// keepPublished keeps the evaluations of the decisions published whose
// reads still stand (those in changed are decided again), and returns
// the contacts another replica kept an evaluation of meanwhile, to decide
// again.
func (s *Service) keepPublished(ctx context.Context, ds []*decided, changed []state.ContactRef) ([]state.ContactRef, error) {
	var mu sync.Mutex
	var again []state.ContactRef
	var keep []*decided
	for _, d := range ds {
		if !slices.Contains(changed, d.ev.ref) {
			keep = append(keep, d)
		}
	}
	err := forEach(ctx, keep, publishesInFlight, func(ctx context.Context, d *decided) error {
		err := s.keep(ctx, d.kept)
		if errors.Is(err, errEvaluationConflict) {
			mu.Lock()
			again = append(again, d.ev.ref)
			mu.Unlock()
			return nil
		}
		return err
	})
	return again, err
}

// audit appends a decision to the audit trail, once (deduplicated by id).
func (s *Service) audit(ctx context.Context, d *eventsv1.Decision) error {
	return s.pub.PublishProto(ctx, bus.AuditSubject("decision", d.GetOrganizationId()), "audit."+d.GetDecisionId(), d)
}

// baseInput is the part of a decision's input the contact's row (c is
// its view) and its last decision say; the rest comes from the reads of
// its group.
func (s *Service) baseInput(row *state.Row, c decide.Contact, last *LastDecision) decide.Input {
	in := decide.Input{
		Contact: c, Threshold: s.cfg.Threshold,
		Now: s.now(), MaxProfileAge: s.cfg.MaxProfileAge,
	}
	in.Recall(last.decided(), row.Cols[s.cfg.FlagColumn].At)
	return in
}

func (s *Service) decision(ref state.ContactRef, res decide.Result, last *LastDecision, crmFlag int, seq uint64, cause string) *eventsv1.Decision {
	previous := crmFlag
	if last != nil {
		previous = last.Value
	}
	// Deterministic for a redelivered event (same state, same last
	// decision), so a repeated publish is deduplicated.
	sum := sha256.Sum256(fmt.Appendf(nil, "%s|%s|%s|%d", ref.Org, ref.ID, res.Digest(), seq))
	return &eventsv1.Decision{
		DecisionId:     hex.EncodeToString(sum[:16]),
		OrganizationId: ref.Org,
		ContactId:      ref.ID,
		Value:          eventsv1.Flag(res.Value),
		Previous:       eventsv1.Flag(previous),
		Reason:         res.Reason,
		Confidence:     res.Confidence,
		DecidedAt:      timestamppb.New(s.now()),
		CauseEventId:   cause,
		Evidence:       evidenceOf(res.Evidence),
	}
}

// evidenceOf is a result's evidence as decisions and kept evaluations
// carry it, before sealing.
func evidenceOf(e decide.Evidence) *eventsv1.Evidence {
	ev := &eventsv1.Evidence{
		MemberId: e.MemberID, MemberMatch: e.MemberMatch, MemberConfidence: e.MemberConfidence,
		CompanyId: e.CompanyID, CompanyName: e.CompanyName, CompanyMatch: e.CompanyMatch,
		CompanyConfidence: e.CompanyConfidence, Contradicts: e.Contradicts,
		EndedPosition: position(e.Ended), CurrentPosition: position(e.Current),
		ProfileSource: e.ProfileSource,
	}
	if !e.ProfileObservedAt.IsZero() {
		ev.ProfileObservedAt = timestamppb.New(e.ProfileObservedAt)
	}
	ev.Features, ev.MatchWeight, ev.Candidates = matchEvidence(e)
	return ev
}

func position(p *decide.Position) *eventsv1.Position {
	if p == nil {
		return nil
	}
	ym := func(y *decide.YearMonth) *eventsv1.YearMonth {
		if y == nil {
			return nil
		}
		return &eventsv1.YearMonth{Year: int32(y.Year), Month: int32(y.Month)}
	}
	return &eventsv1.Position{CompanyId: p.CompanyID, CompanyName: p.CompanyName, Title: p.Title,
		Start: ym(p.Start), End: ym(p.End), Current: p.Current}
}
