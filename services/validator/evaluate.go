package validator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/orgs"
	"github.com/notatcompany/notatcompany/services/validator/decide"
	"github.com/notatcompany/notatcompany/services/validator/state"
)

// evaluateAll evaluates the affected contacts: itself when they are few,
// through the work queue in chunks when they are many, so that one account
// with 50,000 contacts never holds its stream.
func (s *Service) evaluateAll(ctx context.Context, kind string, refs []state.ContactRef, cause string, redelivered bool) error {
	refs = uniq(refs)
	s.metrics.fanout.WithLabelValues(kind).Observe(float64(len(refs)))
	if len(refs) > s.cfg.InlineFanout {
		return s.enqueue(ctx, kind, refs, cause)
	}
	return s.evaluateMany(ctx, kind, refs, cause, redelivered, nil)
}

// evaluationsInFlight bounds the contacts of one batch evaluated at once:
// an evaluation mostly waits on JetStream round trips.
const evaluationsInFlight = 16

// evaluateMany evaluates contacts concurrently, sharing the reads they
// have in common; progress is called as evaluations complete.
func (s *Service) evaluateMany(ctx context.Context, kind string, refs []state.ContactRef, cause string, redelivered bool, progress func()) error {
	shared := batchReads(s.store)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(evaluationsInFlight)
	for _, ref := range refs {
		g.Go(func() error {
			if err := s.evaluate(gctx, kind, ref, cause, redelivered, shared); err != nil {
				return fmt.Errorf("evaluate contact %s: %w", ref.ID, err)
			}
			if progress != nil {
				progress()
			}
			return nil
		})
	}
	return g.Wait()
}

func (s *Service) enqueue(ctx context.Context, kind string, refs []state.ContactRef, cause string) error {
	byOrg := map[string][]string{}
	for _, r := range refs {
		byOrg[r.Org] = append(byOrg[r.Org], r.ID)
	}
	for org, ids := range byOrg {
		slices.Sort(ids) // the same chunks, and ids, on a redelivery
		for i := 0; i < len(ids); i += s.cfg.ChunkSize {
			chunk := ids[i:min(i+s.cfg.ChunkSize, len(ids))]
			id := fmt.Sprintf("%s.%s.%s.%d", cause, kind, org, i/s.cfg.ChunkSize)
			req := &eventsv1.EvaluateRequest{RequestId: id, OrganizationId: org, ContactIds: chunk, Kind: kind, CauseEventId: cause}
			if err := s.pub.PublishProto(ctx, bus.WorkSubject(org), "work."+id, req); err != nil {
				return err
			}
		}
	}
	return nil
}

// evaluate decides one contact and publishes the decision when it differs
// from the last one. The publish names the last decision it replaces: if
// another replica published first, this one decides again on the state as
// it now stands. After publishing it decides once more, so that a decision
// made on a state that changed meanwhile is corrected at once.
func (s *Service) evaluate(ctx context.Context, kind string, ref state.ContactRef, cause string, redelivered bool, shared *reads) error {
	s.metrics.evaluations.WithLabelValues(kind).Inc()
	published := false
	var sealed *sealedEvidence // the evidence last sealed here, to keep
	for attempt := range 6 {
		r := shared
		if attempt > 0 {
			r = freshReads(s.store)
		}
		row, last, seq, err := s.contactAndLast(ctx, ref)
		if err != nil || row == nil {
			return err
		}
		in, scope, err := s.input(ctx, r, ref.Org, row, last)
		if err != nil {
			return err
		}
		settings, err := r.Settings(ctx, ref.Org)
		if err != nil {
			return err
		}
		res, evidence, candidate, review, err := s.reviewed(ctx, ref, decide.Evaluate(in))
		if err != nil {
			return err
		}
		if !decide.WorthPublishing(res, last.decided(), s.flagColumn(row), settings.KeepPersonOverride) {
			if redelivered && !published && last != nil && last.Decision.GetCauseEventId() == cause {
				// An earlier attempt published this decision and may have
				// failed before its audit record was stored.
				if err := s.audit(ctx, last.Decision); err != nil {
					return err
				}
			}
			err := s.keep(ctx, evaluated{ref: ref, res: res, in: in, scope: scope, evidence: evidence, candidate: candidate,
				review: review, flag: row.Cols[s.cfg.FlagColumn], last: last, cause: cause, sealed: sealed})
			if errors.Is(err, errEvaluationConflict) {
				continue
			}
			return err
		}
		if published {
			s.metrics.corrections.Inc()
		}
		d := s.decision(ref, res, last, in.Contact.Flag, seq, cause)
		if review != nil && res.Value == decide.NotAtCompany {
			d.Reviewer = review.GetReviewer()
		}
		plain := proto.CloneOf(d.Evidence)
		if err := s.seal(ctx, ref.Org, ref.ID, d.Evidence); err != nil {
			return err
		}
		sealed = &sealedEvidence{plain: plain, sealed: d.Evidence}
		meta := DecisionMeta{Digest: res.Digest(), Underlying: res.Underlying, FlagSeen: row.Cols[s.cfg.FlagColumn].At}
		err = s.decisions.Publish(ctx, d, meta, seq)
		if errors.Is(err, ErrConflict) {
			s.metrics.conflicts.Inc()
			continue
		}
		if err != nil {
			return err
		}
		if err := s.audit(ctx, d); err != nil {
			return err
		}
		s.metrics.decisions.WithLabelValues(strconv.Itoa(res.Value), res.Reason).Inc()
		s.logDecision(kind, d)
		published = true
	}
	return errors.New("decision still contended; will retry")
}

// contactAndLast reads the contact's row and its last decision at once.
func (s *Service) contactAndLast(ctx context.Context, ref state.ContactRef) (row *state.Row, last *LastDecision, seq uint64, err error) {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { row, err = s.store.Row(gctx, ref.Org, "contact", ref.ID); return err })
	g.Go(func() (err error) { last, seq, err = s.decisions.Last(gctx, ref.Org, ref.ID); return err })
	err = g.Wait()
	return row, last, seq, err
}

// audit appends a decision to the audit trail, once (deduplicated by id).
func (s *Service) audit(ctx context.Context, d *eventsv1.Decision) error {
	return s.pub.PublishProto(ctx, bus.AuditSubject("decision", d.GetOrganizationId()), "audit."+d.GetDecisionId(), d)
}

// input reads what deciding the contact takes, in parallel where one read
// does not need another: the settings, the candidate members and the
// account (then its scope and its companies side by side), and last the
// companies the members and the account name, and the counts of the
// contact's name when a member shares it.
func (s *Service) input(ctx context.Context, r *reads, org string, row *state.Row, last *LastDecision) (decide.Input, *eventsv1.ScopePath, error) {
	in := decide.Input{
		Contact: row.Contact(s.cfg.Columns()), Threshold: s.cfg.Threshold,
		Now: s.now(), MaxProfileAge: s.cfg.MaxProfileAge,
	}
	in.Recall(last.decided(), row.Cols[s.cfg.FlagColumn].At)
	var (
		settings         orgs.Settings
		members          []*state.MemberRecord
		accountCompanies []string
		scope            *eventsv1.ScopePath
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { settings, err = r.Settings(gctx, org); return err })
	g.Go(func() (err error) { members, err = s.store.Candidates(gctx, in.Contact); return err })
	g.Go(func() error {
		var acct *state.Row
		if id := in.Contact.AccountID; id != "" {
			var err error
			if acct, err = r.Row(gctx, org, "account", id); err != nil {
				return err
			}
			if acct != nil && !acct.Deleted {
				a := acct.Account(s.cfg.Columns())
				in.Account = &a
			}
		}
		side, sctx := errgroup.WithContext(gctx)
		side.Go(func() (err error) { scope, err = s.inScope(sctx, r, org, row, acct); return err })
		side.Go(func() (err error) { accountCompanies, err = r.CompanyIDsOfAccount(sctx, org, in.Account); return err })
		return side.Wait()
	})
	if err := g.Wait(); err != nil {
		return in, nil, err
	}
	in.InScope = scope.GetInScope()
	in.ReflagAfterIgnore = settings.ReflagAfterIgnore
	if settings.Threshold > 0 {
		in.Threshold = settings.Threshold
	}
	var companyIDs []string
	for _, m := range members {
		in.Members = append(in.Members, m.Decision())
		for _, p := range m.Positions {
			companyIDs = append(companyIDs, p.CompanyID)
		}
	}
	// The companies, and beside them the counts of the contact's name when
	// a member has it.
	g, gctx = errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		in.Companies, err = s.store.CompaniesWithFamily(gctx, uniq(append(companyIDs, accountCompanies...)))
		return err
	})
	if decide.SharesFullName(in.Contact, in.Members) {
		g.Go(func() (err error) {
			in.Names, err = s.store.NameStats(gctx, org, in.Contact, accountCompanies)
			return err
		})
	}
	err := g.Wait()
	return in, scope, err
}

// inScope applies the three rules: the contact is owned by a sync user, or
// its account is, or it is linked to an opportunity owned by one (by the
// opportunity's lookups, or by a stakeholder connection). The path
// records each rule tried, for explain.
func (s *Service) inScope(ctx context.Context, r *reads, org string, contact, account *state.Row) (*eventsv1.ScopePath, error) {
	path := &eventsv1.ScopePath{}
	try := func(via, row, user string) (bool, error) {
		ok, err := r.IsSyncUser(ctx, org, user)
		if err != nil {
			return false, err
		}
		path.Checks = append(path.Checks, &eventsv1.ScopeCheck{Via: via, UserId: user, RowId: row, SyncUser: ok})
		if ok {
			path.InScope, path.Via, path.UserId = true, via, user
			if via == scopeOpportunityOwner || via == scopeOpportunityConnection {
				path.OpportunityId = row
			}
		}
		return ok, nil
	}
	if ok, err := try(scopeContactOwner, "", contact.Owner()); ok || err != nil {
		return path, err
	}
	if account != nil && !account.Deleted {
		if ok, err := try(scopeAccountOwner, account.ID, account.Owner()); ok || err != nil {
			return path, err
		}
	}
	opps, err := s.store.OpportunitiesOfContact(ctx, org, contact.ID)
	if err != nil {
		return path, err
	}
	for _, id := range opps {
		opp, err := r.Row(ctx, org, "opportunity", id)
		if err != nil {
			return path, err
		}
		if opp == nil || opp.Deleted || !slices.Contains(opp.LinkedContacts(), contact.ID) {
			continue // an index entry the row no longer backs
		}
		if ok, err := try(scopeOpportunityOwner, id, opp.Owner()); ok || err != nil {
			return path, err
		}
	}
	return path, s.scopeByConnection(ctx, r, org, contact.ID, path, try)
}

// The scope rules, as a scope path names them.
const (
	scopeContactOwner     = "contact_owner"
	scopeAccountOwner     = "account_owner"
	scopeOpportunityOwner = "opportunity_owner"
)

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
