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

	"golang.org/x/sync/errgroup"
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
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(groupsInFlight)
	for i := 0; i < len(refs); i += groupSize {
		group := refs[i:min(i+groupSize, len(refs))]
		g.Go(func() error { return s.evaluateGroup(gctx, group, t, progress) })
	}
	return g.Wait()
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
	settled   outcome = iota // nothing (more) to publish
	published                // published: check it still stands
	contended                // another replica published first: again
)

// evaluateGroup decides a group of contacts and publishes each decision
// that differs from the last one. A publish names the last decision it
// replaces: if another replica published first, the contact is decided
// again on the state as it now stands. After publishing, it asks whether
// anything the decision rested on changed meanwhile, and decides again
// those whose reads did, so that a decision made on a state that changed
// is corrected at once.
func (s *Service) evaluateGroup(ctx context.Context, refs []state.ContactRef, t trigger, progress func()) error {
	s.metrics.evaluations.WithLabelValues(t.kind).Add(float64(len(refs)))
	var mu sync.Mutex
	publishedOnce := map[state.ContactRef]bool{}
	pending := refs
	for range 6 {
		snap, err := s.readGroup(ctx, pending, t.floor)
		if err != nil {
			return err
		}
		var again []state.ContactRef
		var check []*evaluation
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(publishesInFlight)
		for _, ref := range pending {
			ev, err := s.evaluation(snap, ref)
			if err != nil {
				return fmt.Errorf("evaluate contact %s: %w", ref.ID, err)
			}
			if ev == nil {
				continue // not stored (yet)
			}
			mu.Lock()
			before := publishedOnce[ref]
			mu.Unlock()
			g.Go(func() error {
				out, err := s.decideAndPublish(gctx, ev, t, before)
				if err != nil {
					return fmt.Errorf("evaluate contact %s: %w", ref.ID, err)
				}
				mu.Lock()
				defer mu.Unlock()
				switch out {
				case contended:
					again = append(again, ref)
				case published:
					publishedOnce[ref] = true
					check = append(check, ev)
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		changed, err := s.changedSince(ctx, check)
		if err != nil {
			return err
		}
		if progress != nil {
			for range len(pending) - len(again) - len(changed) {
				progress()
			}
		}
		pending = append(again, changed...)
		if len(pending) == 0 {
			return nil
		}
	}
	return errors.New("decision still contended; will retry")
}

// decideAndPublish decides one contact on its evaluation, and publishes
// the decision when it is worth it (before: an earlier attempt of this
// evaluation published one).
func (s *Service) decideAndPublish(ctx context.Context, ev *evaluation, t trigger, before bool) (outcome, error) {
	res := decide.Evaluate(ev.in)
	if !s.worthPublishing(res, ev.last, ev.row, ev.settings.KeepPersonOverride) {
		if t.redelivered && !before && ev.last != nil && ev.last.Decision.GetCauseEventId() == t.cause {
			// An earlier attempt published this decision and may have
			// failed before its audit record was stored.
			return settled, s.audit(ctx, ev.last.Decision)
		}
		return settled, nil
	}
	if before {
		s.metrics.corrections.Inc()
	}
	d := s.decision(ev.ref, res, ev.last, ev.in.Contact.Flag, ev.seq, t.cause)
	if err := s.seal(ctx, ev.ref.Org, ev.ref.ID, d.Evidence); err != nil {
		return settled, err
	}
	meta := DecisionMeta{Digest: res.Digest(), Underlying: res.Underlying, FlagSeen: ev.row.Cols[s.cfg.FlagColumn].At,
		ContactRev: ev.contactRev, ScopeAt: ev.scopeAt}
	err := s.decisions.Publish(ctx, d, meta, ev.seq)
	if errors.Is(err, ErrConflict) {
		s.metrics.conflicts.Inc()
		return contended, nil
	}
	if err != nil {
		return settled, err
	}
	if err := s.audit(ctx, d); err != nil {
		return settled, err
	}
	s.metrics.decisions.WithLabelValues(strconv.Itoa(res.Value), res.Reason).Inc()
	return published, nil
}

// audit appends a decision to the audit trail, once (deduplicated by id).
func (s *Service) audit(ctx context.Context, d *eventsv1.Decision) error {
	return s.pub.PublishProto(ctx, bus.AuditSubject("decision", d.GetOrganizationId()), "audit."+d.GetDecisionId(), d)
}

// worthPublishing: a decision goes out when its value differs from the last
// one (or, first time, from the column in Dynamics), when a flag's evidence
// changed, when the evidence behind an Ignore changed, or when a user
// changed the column since our last decision (unless the organization
// keeps a person's value until the evidence changes).
func (s *Service) worthPublishing(res decide.Result, last *LastDecision, row *state.Row, keepOverride bool) bool {
	flag := row.Cols[s.cfg.FlagColumn]
	current, _ := strconv.Atoi(flag.V)
	if last == nil {
		return res.Value != current
	}
	switch {
	case res.Value != last.Value:
		return true
	case res.Value == decide.NotAtCompany && res.Digest() != last.Digest:
		return true
	case res.Value == decide.Ignore && res.Underlying != last.Underlying && last.Underlying == "":
		return true // remember what the user overrode
	case flag.At > last.FlagSeen && current != res.Value && res.Value != decide.Ignore && !keepOverride:
		return true
	}
	return false
}

// baseInput is the part of a decision's input the contact's row and its
// last decision say; the rest comes from the reads of its group.
func (s *Service) baseInput(row *state.Row, last *LastDecision) decide.Input {
	in := decide.Input{
		Contact: row.Contact(s.cfg.Columns()), Threshold: s.cfg.Threshold,
		Now: s.now(), MaxProfileAge: s.cfg.MaxProfileAge,
	}
	if last != nil && last.Value == decide.Ignore {
		in.IgnoredDigest = last.Underlying
	}
	in.IgnoredAt = ignoredAt(in.Contact, row.Cols[s.cfg.FlagColumn])
	// An Ignore the last decision saw and still decided otherwise on is one
	// a re-flag overrode: the column holds our flag now, though our write
	// never comes back (ingest drops it as our own echo). Only a user's
	// change after that decision is their word again.
	if last != nil && last.Value != decide.Ignore && in.Contact.Flag == decide.Ignore &&
		row.Cols[s.cfg.FlagColumn].At <= last.FlagSeen {
		in.Contact.Flag = last.Value
	}
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
	e := res.Evidence
	d := &eventsv1.Decision{
		DecisionId:     hex.EncodeToString(sum[:16]),
		OrganizationId: ref.Org,
		ContactId:      ref.ID,
		Value:          eventsv1.Flag(res.Value),
		Previous:       eventsv1.Flag(previous),
		Reason:         res.Reason,
		Confidence:     res.Confidence,
		DecidedAt:      timestamppb.New(s.now()),
		CauseEventId:   cause,
		Evidence: &eventsv1.Evidence{
			MemberId: e.MemberID, MemberMatch: e.MemberMatch, MemberConfidence: e.MemberConfidence,
			CompanyId: e.CompanyID, CompanyName: e.CompanyName, CompanyMatch: e.CompanyMatch,
			CompanyConfidence: e.CompanyConfidence, Contradicts: e.Contradicts,
			EndedPosition: position(e.Ended), CurrentPosition: position(e.Current),
			ProfileSource: e.ProfileSource,
		},
	}
	if !e.ProfileObservedAt.IsZero() {
		d.Evidence.ProfileObservedAt = timestamppb.New(e.ProfileObservedAt)
	}
	d.Evidence.Features, d.Evidence.MatchWeight, d.Evidence.Candidates = matchEvidence(e)
	return d
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
