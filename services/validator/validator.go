package validator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/orgs"
	"github.com/notatcompany/notatcompany/services/validator/decide"
	"github.com/notatcompany/notatcompany/services/validator/state"
)

// Publisher stores a protobuf message in JetStream; nil means stored.
type Publisher interface {
	PublishProto(ctx context.Context, subject, msgID string, m proto.Message) error
}

// Decisions is the decision stream: it keeps the latest decision per
// contact, and a publish names the last one it replaces, so that two
// replicas deciding the same contact cannot both win.
type Decisions interface {
	// Last returns the contact's last decision and its sequence (0: none).
	Last(ctx context.Context, org, contact string) (*LastDecision, uint64, error)
	// Publish stores d if the contact's last decision is still at seq;
	// ErrConflict otherwise.
	Publish(ctx context.Context, d *eventsv1.Decision, meta DecisionMeta, seq uint64) error
}

// DecisionMeta is what the next decision is compared with.
type DecisionMeta struct {
	Digest     string
	Underlying string // of an Ignore: the evidence the user overrode
	// FlagSeen is the version of the flag column the decision saw: a user
	// change after it is one the decision did not know of.
	FlagSeen int64
}

// LastDecision is what the validator needs of the last decision.
type LastDecision struct {
	DecisionMeta
	Value    int
	Decision *eventsv1.Decision
}

// ErrConflict means another replica published a decision for the contact first.
var ErrConflict = errors.New("decision published concurrently")

// Service is the validator.
type Service struct {
	cfg       Config
	store     *state.Store
	events    ProfileEvents
	decisions Decisions
	pub       Publisher
	log       *slog.Logger
	metrics   *metrics
	now       func() time.Time
}

// New returns a validator over store, publishing decisions to decisions
// and the audit trail and work chunks through pub.
func New(cfg Config, store *state.Store, events ProfileEvents, decisions Decisions, pub Publisher, log *slog.Logger, reg prometheus.Registerer) *Service {
	return &Service{cfg: cfg, store: store, events: events, decisions: decisions, pub: pub, log: log,
		metrics: newMetrics(reg), now: time.Now}
}

// HandleCRM applies one CRM change and re-evaluates the contacts it affects.
func (s *Service) HandleCRM(ctx context.Context, msg jetstream.Msg) error {
	var ch eventsv1.CrmChange
	if err := proto.Unmarshal(msg.Data(), &ch); err != nil {
		return bus.Permanent(fmt.Errorf("decode CrmChange: %w", err))
	}
	kind := "crm_" + ch.GetTable()
	if !state.Tracked(ch.GetTable()) {
		s.metrics.events.WithLabelValues("crm_other", "not_used").Inc()
		return nil
	}
	if err := validateCRM(&ch, msg.Subject()); err != nil {
		return invalid("CrmChange", err)
	}
	// The fold bounds a change's version by when it was received: by
	// JetStream's clock, not a claim of the sender's.
	ch.ReceivedAt = notAfterArrival(ch.GetReceivedAt(), arrival(msg, ch.GetReceivedAt()))
	if ch.GetReadBackRequired() {
		// It carries no columns: the sync workers read the row back and
		// publish it as a change of its own.
		s.metrics.events.WithLabelValues(kind, "read_back").Inc()
		return nil
	}
	before, after, changed, err := s.store.ApplyChange(ctx, &ch)
	if err != nil {
		return fmt.Errorf("apply %s %s: %w", ch.GetTable(), ch.GetRowId(), err)
	}
	if !s.counted(kind, changed, msg) {
		return nil
	}
	org, id := ch.GetOrganizationId(), ch.GetRowId()
	var affected []state.ContactRef
	switch ch.GetTable() {
	case "contact":
		affected = []state.ContactRef{{Org: org, ID: id}}
	case "account":
		affected, err = s.store.ContactsOfAccount(ctx, org, id)
	case "opportunity":
		// Its contacts, before and after: a contact may have left or
		// entered scope through it.
		for _, r := range []*state.Row{before, after} {
			if r != nil {
				for _, c := range r.LinkedContacts() {
					affected = append(affected, state.ContactRef{Org: org, ID: c})
				}
			}
		}
	case "systemuser":
		// Only isdisabled moves scope. A redelivery finds the row as the
		// first attempt left it, which may have changed isdisabled and
		// failed before deciding: evaluate then too.
		if before.Disabled() != after.Disabled() || redelivered(msg) {
			affected, err = s.ownedContacts(ctx, org, id)
		}
	}
	if err != nil {
		return err
	}
	return s.evaluateAll(ctx, kind, affected, ch.GetEventId(), redelivered(msg))
}

// ownedContacts lists the contacts whose scope depends on user: those it
// owns, those of the accounts it owns, those linked to its opportunities.
func (s *Service) ownedContacts(ctx context.Context, org, user string) ([]state.ContactRef, error) {
	contacts, err := s.store.Owned(ctx, org, user, "c")
	if err != nil {
		return nil, err
	}
	out := make([]state.ContactRef, 0, len(contacts))
	for _, c := range contacts {
		out = append(out, state.ContactRef{Org: org, ID: c})
	}
	accounts, err := s.store.Owned(ctx, org, user, "a")
	if err != nil {
		return nil, err
	}
	for _, a := range accounts {
		refs, err := s.store.ContactsOfAccount(ctx, org, a)
		if err != nil {
			return nil, err
		}
		out = append(out, refs...)
	}
	opps, err := s.store.Owned(ctx, org, user, "o")
	if err != nil {
		return nil, err
	}
	for _, o := range opps {
		refs, err := s.store.ContactsOfOpportunity(ctx, org, o)
		if err != nil {
			return nil, err
		}
		out = append(out, refs...)
	}
	return out, nil
}

// HandleAdmin applies a sync user or settings change from the admin API.
func (s *Service) HandleAdmin(ctx context.Context, msg jetstream.Msg) error {
	subject := msg.Subject()
	switch {
	case strings.Contains(subject, ".syncuser."):
		var c eventsv1.SyncUserChange
		if err := proto.Unmarshal(msg.Data(), &c); err != nil {
			return bus.Permanent(fmt.Errorf("decode SyncUserChange: %w", err))
		}
		if err := validateSyncUser(&c, subject); err != nil {
			return invalid("SyncUserChange", err)
		}
		clampTime(&c.ChangedAt, arrival(msg, nil))
		changed, err := s.store.ApplySyncUser(ctx, &c)
		if err != nil {
			return fmt.Errorf("apply sync user: %w", err)
		}
		if !s.counted("sync_user", changed, msg) {
			return nil
		}
		affected, err := s.ownedContacts(ctx, c.GetOrganizationId(), c.GetUserId())
		if err != nil {
			return err
		}
		return s.evaluateAll(ctx, "sync_user", affected, c.GetEventId(), redelivered(msg))
	case strings.HasSuffix(subject, ".settings"):
		var c eventsv1.OrgSettingsChange
		if err := proto.Unmarshal(msg.Data(), &c); err != nil {
			return bus.Permanent(fmt.Errorf("decode OrgSettingsChange: %w", err))
		}
		if err := validateSettings(&c, subject); err != nil {
			return invalid("OrgSettingsChange", err)
		}
		clampTime(&c.ChangedAt, arrival(msg, nil))
		before, changed, err := s.store.ApplySettings(ctx, &c)
		if err != nil {
			return fmt.Errorf("apply settings: %w", err)
		}
		if !s.counted("settings", changed, msg) {
			return nil
		}
		// Switching data validation on or off is the writer's business;
		// a new threshold or Ignore rule changes decisions.
		if before != nil && before.Threshold == c.GetConfidenceThreshold() && before.ReflagAfterIgnore == c.GetReflagAfterIgnore() &&
			before.KeepPersonOverride == c.GetKeepPersonOverride() {
			return nil
		}
		affected, err := s.store.ContactsOfOrg(ctx, c.GetOrganizationId())
		if err != nil {
			return err
		}
		return s.evaluateAll(ctx, "settings", affected, c.GetEventId(), redelivered(msg))
	default:
		return bus.Permanent(errors.New("unknown admin subject"))
	}
}

// HandleWork evaluates one chunk of a large fan-out.
func (s *Service) HandleWork(ctx context.Context, msg jetstream.Msg) error {
	var req eventsv1.EvaluateRequest
	if err := proto.Unmarshal(msg.Data(), &req); err != nil {
		return bus.Permanent(fmt.Errorf("decode EvaluateRequest: %w", err))
	}
	if err := validateWork(&req, msg.Subject()); err != nil {
		return invalid("EvaluateRequest", err)
	}
	refs := make([]state.ContactRef, 0, len(req.GetContactIds()))
	for _, id := range req.GetContactIds() {
		refs = append(refs, state.ContactRef{Org: req.GetOrganizationId(), ID: id})
	}
	var done atomic.Int64
	return s.evaluateMany(ctx, req.GetKind(), refs, req.GetCauseEventId(), redelivered(msg), func() {
		// Keep the chunk ours while it takes its time.
		if done.Add(1)%100 == 0 {
			_ = msg.InProgress()
		}
	})
}

// counted records whether an event changed the state and reports whether
// the contacts it affects are to be evaluated: when it changed something,
// and when it is a redelivery, because an earlier attempt may have applied
// it and then failed before publishing the decisions it led to.
func (s *Service) counted(kind string, changed bool, msg jetstream.Msg) bool {
	if changed {
		s.metrics.events.WithLabelValues(kind, "applied").Inc()
		return true
	}
	s.metrics.events.WithLabelValues(kind, "unchanged").Inc()
	return redelivered(msg)
}

// redelivered reports whether msg was delivered before.
func redelivered(msg jetstream.Msg) bool {
	meta, err := msg.Metadata()
	return err == nil && meta.NumDelivered > 1
}

func uniq[T comparable](items []T) []T {
	seen := make(map[T]bool, len(items))
	out := items[:0:0]
	for _, it := range items {
		if !seen[it] {
			seen[it] = true
			out = append(out, it)
		}
	}
	return out
}

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
	for attempt := range 6 {
		r := shared
		if attempt > 0 {
			r = freshReads(s.store)
		}
		row, last, seq, err := s.contactAndLast(ctx, ref)
		if err != nil || row == nil {
			return err
		}
		in, err := s.input(ctx, r, ref.Org, row, last)
		if err != nil {
			return err
		}
		settings, err := r.Settings(ctx, ref.Org)
		if err != nil {
			return err
		}
		res := decide.Evaluate(in)
		if !s.worthPublishing(res, last, row, settings.KeepPersonOverride) {
			if redelivered && !published && last != nil && last.Decision.GetCauseEventId() == cause {
				// An earlier attempt published this decision and may have
				// failed before its audit record was stored.
				return s.audit(ctx, last.Decision)
			}
			return nil
		}
		if published {
			s.metrics.corrections.Inc()
		}
		d := s.decision(ref, res, last, in.Contact.Flag, seq, cause)
		if err := s.seal(ctx, ref.Org, ref.ID, d.Evidence); err != nil {
			return err
		}
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

// input reads what deciding the contact takes, in parallel where one read
// does not need another: the settings, the candidate members and the
// account (then its scope and its companies side by side), and last the
// companies the members and the account name.
func (s *Service) input(ctx context.Context, r *reads, org string, row *state.Row, last *LastDecision) (decide.Input, error) {
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
	var (
		settings         orgs.Settings
		members          []*state.MemberRecord
		accountCompanies []string
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
		side.Go(func() (err error) { in.InScope, err = s.inScope(sctx, r, org, row, acct); return err })
		side.Go(func() (err error) { accountCompanies, err = r.CompanyIDsOfAccount(sctx, org, in.Account); return err })
		return side.Wait()
	})
	if err := g.Wait(); err != nil {
		return in, err
	}
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
	var err error
	in.Companies, err = s.store.CompaniesWithFamily(ctx, uniq(append(companyIDs, accountCompanies...)))
	return in, err
}

// inScope applies the three rules: the contact is owned by a sync user, or
// its account is, or it is linked to an opportunity owned by one.
func (s *Service) inScope(ctx context.Context, r *reads, org string, contact, account *state.Row) (bool, error) {
	if ok, err := r.IsSyncUser(ctx, org, contact.Owner()); ok || err != nil {
		return ok, err
	}
	if account != nil && !account.Deleted {
		if ok, err := r.IsSyncUser(ctx, org, account.Owner()); ok || err != nil {
			return ok, err
		}
	}
	opps, err := s.store.OpportunitiesOfContact(ctx, org, contact.ID)
	if err != nil {
		return false, err
	}
	for _, id := range opps {
		opp, err := r.Row(ctx, org, "opportunity", id)
		if err != nil {
			return false, err
		}
		if opp == nil || opp.Deleted || !slices.Contains(opp.LinkedContacts(), contact.ID) {
			continue // an index entry the row no longer backs
		}
		if ok, err := r.IsSyncUser(ctx, org, opp.Owner()); ok || err != nil {
			return ok, err
		}
	}
	return false, nil
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
