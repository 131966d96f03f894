package validator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/validator/state"
)

// Decisions is the decision stream: it keeps the latest decision per
// contact, and a publish names the last one it replaces, so that two
// replicas deciding the same contact cannot both win.
type Decisions interface {
	// Last returns the contact's last decision and its sequence (0: none).
	Last(ctx context.Context, org, contact string) (*LastDecision, uint64, error)
	// LastOf returns the last decisions of contacts, in one read; a
	// contact without one is not in the map.
	LastOf(ctx context.Context, refs []state.ContactRef) (map[state.ContactRef]Last, error)
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
	// ContactRev and ScopeAt are where the decision's reads stood: the
	// next decision of the contact reads no less (issue: a decision made
	// on an older read than the one it replaces flaps).
	ContactRev uint64
	ScopeAt    state.Floor
}

// Last is a contact's last decision and its stream sequence.
type Last struct {
	Decision *LastDecision
	Seq      uint64
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
	evals     *evaluationStore
	pub       bus.Publishing
	log       *slog.Logger
	metrics   *metrics
	now       func() time.Time
}

// New returns a validator over store, publishing decisions to decisions
// and the audit trail and work chunks through pub.
func New(cfg Config, store *state.Store, events ProfileEvents, decisions Decisions, pub bus.Publishing, log *slog.Logger, reg prometheus.Registerer) *Service {
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
		affected, err = s.contactAndNamesakes(ctx, org, id, before, after, redelivered(msg))
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
		affected, err = s.withStakeholders(ctx, org, id, affected)
	case "connection":
		affected = connectionContacts(org, before, after)
	case "systemuser":
		// Only isdisabled moves scope. A redelivery finds the row as the
		// first attempt left it, which may have changed isdisabled and
		// failed before deciding: evaluate then too.
		if before.Disabled() != after.Disabled() || redelivered(msg) {
			return s.evaluateScopeChange(ctx, msg, kind, org, id, ch.GetEventId(), state.Floor{})
		}
	}
	if err != nil {
		return err
	}
	return s.evaluateAll(ctx, kind, affected, ch.GetEventId(), redelivered(msg))
}

// evaluateScopeChange evaluates the contacts whose scope depends on user,
// after a change of the scope cache's sources, on a cache past floor (or,
// for a zero floor, brought up to now). The first delivery of the change
// is held back and handled once more ScopeSettle later: that pass lists
// the contacts again and decides on a cache every replica has had the
// change in for longer than its lease (see state.ScopeSettle).
func (s *Service) evaluateScopeChange(ctx context.Context, msg jetstream.Msg, kind, org, user, cause string, floor state.Floor) error {
	affected, err := s.ownedContacts(ctx, org, user)
	if err != nil {
		return err
	}
	return s.settleScope(ctx, msg, affected, trigger{kind: kind, cause: cause, redelivered: redelivered(msg), floor: floor})
}

// settleScope evaluates affected for a change of the scope cache's
// sources, and holds the first delivery back for the pass that settles it.
func (s *Service) settleScope(ctx context.Context, msg jetstream.Msg, affected []state.ContactRef, t trigger) error {
	if t.floor == (state.Floor{}) {
		var err error
		if t.floor, err = s.store.Scope().Sync(ctx); err != nil {
			return err
		}
	}
	t.again = t.redelivered
	if err := s.evaluateFor(ctx, affected, t); err != nil {
		return err
	}
	if !t.redelivered {
		return bus.Hold(errSettling, state.ScopeSettle)
	}
	return nil
}

// errSettling is why a change of a sync user, the settings or a system
// user comes back once: to be evaluated again once every cache has it.
var errSettling = errors.New("evaluated; once more when every replica's scope cache has the change")

// ownedContacts lists the contacts whose scope depends on user: those it
// owns, those of the accounts it owns, those linked to its opportunities
// (stakeholders included).
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
		if out, err = s.withStakeholders(ctx, org, o, append(out, refs...)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// HandleAdmin applies a sync user or settings change, or a review, from the admin API.
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
		changed, at, err := s.store.ApplySyncUser(ctx, &c)
		if err != nil {
			return fmt.Errorf("apply sync user: %w", err)
		}
		if !s.counted("sync_user", changed, msg) {
			return nil
		}
		return s.evaluateScopeChange(ctx, msg, "sync_user", c.GetOrganizationId(), c.GetUserId(), c.GetEventId(), at)
	case strings.Contains(subject, ".review."):
		return s.handleReview(ctx, msg)
	case strings.HasSuffix(subject, ".settings"):
		var c eventsv1.OrgSettingsChange
		if err := proto.Unmarshal(msg.Data(), &c); err != nil {
			return bus.Permanent(fmt.Errorf("decode OrgSettingsChange: %w", err))
		}
		if err := validateSettings(&c, subject); err != nil {
			return invalid("OrgSettingsChange", err)
		}
		clampTime(&c.ChangedAt, arrival(msg, nil))
		before, changed, at, err := s.store.ApplySettings(ctx, &c)
		if err != nil {
			return fmt.Errorf("apply settings: %w", err)
		}
		if !s.counted("settings", changed, msg) {
			return nil
		}
		// Switching data validation on or off is the writer's business;
		// a new threshold or Ignore rule changes decisions. A redelivery
		// cannot tell what the first delivery changed: it evaluates.
		if changed && before != nil && before.Threshold == c.GetConfidenceThreshold() && before.ReflagAfterIgnore == c.GetReflagAfterIgnore() &&
			before.KeepPersonOverride == c.GetKeepPersonOverride() {
			return nil
		}
		affected, err := s.store.ContactsOfOrg(ctx, c.GetOrganizationId())
		if err != nil {
			return err
		}
		return s.settleScope(ctx, msg, affected, trigger{kind: "settings", cause: c.GetEventId(), redelivered: redelivered(msg), floor: at})
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
	// The chunk's trigger was applied before it was queued: the scope
	// cache must hold everything done before now.
	floor, err := s.store.Scope().Sync(ctx)
	if err != nil {
		return err
	}
	t := trigger{kind: req.GetKind(), cause: req.GetCauseEventId(), redelivered: redelivered(msg), floor: floor}
	var done atomic.Int64
	return s.evaluateMany(ctx, refs, t, func() {
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
