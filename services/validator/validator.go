package validator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/validator/decide"
	"github.com/notatcompany/notatcompany/services/validator/state"
)

// Publisher stores a protobuf message in JetStream; nil means stored.
type Publisher interface {
	PublishProto(ctx context.Context, subject, msgID string, m proto.Message) error
}

// ProfileEvents holds the profile events as received; an erasure removes
// a member's from it.
type ProfileEvents interface {
	// PurgeMember removes the member's profile events stored before seq.
	PurgeMember(ctx context.Context, memberID string, beforeSeq uint64) error
}

// Service is the validator.
type Service struct {
	cfg     Config
	store   *state.Store
	events  ProfileEvents
	pub     Publisher
	log     *slog.Logger
	metrics *metrics
	now     func() time.Time
}

// New returns a validator over store and events, publishing through pub.
func New(cfg Config, store *state.Store, events ProfileEvents, pub Publisher, log *slog.Logger, reg prometheus.Registerer) *Service {
	return &Service{cfg: cfg, store: store, events: events, pub: pub, log: log, metrics: newMetrics(reg), now: time.Now}
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
	if ch.GetReadBackRequired() {
		// Kept aside, not dropped, until reading rows back is supported.
		return bus.Permanent(errors.New("change needs a read-back from the Web API, which this version does not do"))
	}
	_, _, changed, err := s.store.ApplyChange(ctx, &ch)
	if err != nil {
		return fmt.Errorf("apply %s %s: %w", ch.GetTable(), ch.GetRowId(), err)
	}
	if !s.counted(kind, changed, msg) {
		return nil
	}
	org := ch.GetOrganizationId()
	var affected []state.ContactRef
	switch ch.GetTable() {
	case "contact":
		affected = []state.ContactRef{{Org: org, ID: ch.GetRowId()}}
	case "account":
		if affected, err = s.store.ContactsOfAccount(ctx, org, ch.GetRowId()); err != nil {
			return err
		}
	}
	return s.evaluateAll(ctx, kind, affected, ch.GetEventId())
}

// HandleProfile applies one profile source event and re-evaluates the
// contacts it affects.
func (s *Service) HandleProfile(ctx context.Context, msg jetstream.Msg) error {
	subject := msg.Subject()
	switch {
	case strings.HasPrefix(subject, "nac.profile.member."):
		var p eventsv1.ProfileChange
		if err := proto.Unmarshal(msg.Data(), &p); err != nil {
			return bus.Permanent(fmt.Errorf("decode ProfileChange: %w", err))
		}
		before, after, changed, err := s.store.ApplyProfile(ctx, &p)
		if err != nil {
			return fmt.Errorf("apply profile %s: %w", p.GetMemberId(), err)
		}
		return s.afterMember(ctx, "profile", before, after, s.counted("profile", changed, msg), p.GetEventId())
	case strings.HasPrefix(subject, "nac.profile.erasure."):
		var e eventsv1.MemberErased
		if err := proto.Unmarshal(msg.Data(), &e); err != nil {
			return bus.Permanent(fmt.Errorf("decode MemberErased: %w", err))
		}
		before, erased, err := s.store.EraseMember(ctx, &e)
		if err != nil {
			return fmt.Errorf("erase member: %w", err)
		}
		if err := s.eraseEverywhere(ctx, &e, msg); err != nil {
			return err
		}
		return s.afterMember(ctx, "erasure", before, nil, s.counted("erasure", erased, msg), e.GetEventId())
	case strings.HasPrefix(subject, "nac.profile.company."):
		var c eventsv1.CompanyChange
		if err := proto.Unmarshal(msg.Data(), &c); err != nil {
			return bus.Permanent(fmt.Errorf("decode CompanyChange: %w", err))
		}
		before, after, changed, err := s.store.ApplyCompany(ctx, &c)
		if err != nil {
			return fmt.Errorf("apply company %s: %w", c.GetCompanyId(), err)
		}
		if !s.counted("company", changed, msg) {
			return nil
		}
		var accounts []state.ContactRef
		for _, rec := range []*state.CompanyRecord{before, after} {
			if rec == nil {
				continue
			}
			refs, err := s.store.AccountsByCompany(ctx, rec.Name, rec.Domains)
			if err != nil {
				return err
			}
			accounts = append(accounts, refs...)
		}
		var affected []state.ContactRef
		for _, a := range uniq(accounts) {
			refs, err := s.store.ContactsOfAccount(ctx, a.Org, a.ID)
			if err != nil {
				return err
			}
			affected = append(affected, refs...)
		}
		return s.evaluateAll(ctx, "company", affected, c.GetEventId())
	default:
		return bus.Permanent(fmt.Errorf("unknown profile subject %q", subject))
	}
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
	meta, err := msg.Metadata()
	return err == nil && meta.NumDelivered > 1
}

// eraseEverywhere removes the member's raw profile events (those stored
// before the erasure; a newer observation is a new start) and records the
// erasure in the audit trail. Both are idempotent, so a redelivery is safe.
func (s *Service) eraseEverywhere(ctx context.Context, e *eventsv1.MemberErased, msg jetstream.Msg) error {
	meta, err := msg.Metadata()
	if err != nil {
		return fmt.Errorf("erasure metadata: %w", err)
	}
	if err := s.events.PurgeMember(ctx, e.GetMemberId(), meta.Sequence.Stream); err != nil {
		return fmt.Errorf("purge profile events of the erased member: %w", err)
	}
	return s.pub.PublishProto(ctx, bus.AuditSubject("erasure", "all"), "audit.erasure."+e.GetEventId(), e)
}

// afterMember re-evaluates the contacts that share an email with the member
// as it was or as it is now.
func (s *Service) afterMember(ctx context.Context, kind string, before, after *state.MemberRecord, evaluate bool, cause string) error {
	if !evaluate {
		return nil
	}
	var hashes []string
	for _, m := range []*state.MemberRecord{before, after} {
		if m != nil {
			hashes = append(hashes, m.EmailHashes...)
		}
	}
	var affected []state.ContactRef
	for _, h := range uniq(hashes) {
		refs, err := s.store.ContactsByEmail(ctx, h)
		if err != nil {
			return err
		}
		affected = append(affected, refs...)
	}
	return s.evaluateAll(ctx, kind, affected, cause)
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

func (s *Service) evaluateAll(ctx context.Context, kind string, refs []state.ContactRef, cause string) error {
	for _, ref := range uniq(refs) {
		if err := s.evaluate(ctx, kind, ref, cause); err != nil {
			return fmt.Errorf("evaluate contact %s: %w", ref.ID, err)
		}
	}
	return nil
}

// evaluate decides one contact and publishes the decision if it differs
// from the last one. Another replica deciding the same contact at the same
// time makes the save fail; the contact is then decided again on the state
// as it now stands.
func (s *Service) evaluate(ctx context.Context, kind string, ref state.ContactRef, cause string) error {
	for range 4 {
		s.metrics.evaluations.WithLabelValues(kind).Inc()
		row, err := s.store.Row(ctx, ref.Org, "contact", ref.ID)
		if err != nil || row == nil {
			return err
		}
		in, err := s.input(ctx, ref.Org, row)
		if err != nil {
			return err
		}
		res := decide.Evaluate(in)
		last, rev, err := s.store.LastDecision(ctx, ref.Org, ref.ID)
		if err != nil {
			return err
		}
		if !s.worthPublishing(res, last, row) {
			return nil
		}
		d := s.decision(ref, res, last, rev, in.Contact.Flag, cause)
		if err := s.pub.PublishProto(ctx, bus.DecisionSubject(ref.Org, ref.ID), d.GetDecisionId(), d); err != nil {
			return err
		}
		if err := s.pub.PublishProto(ctx, bus.AuditSubject("decision", ref.Org), "audit."+d.GetDecisionId(), d); err != nil {
			return err
		}
		err = s.store.SaveDecision(ctx, ref.Org, ref.ID, state.LastDecision{
			DecisionID: d.GetDecisionId(), Value: res.Value, Reason: res.Reason, Digest: res.Digest(),
			DecidedAt: d.GetDecidedAt().AsTime().UnixMilli(),
		}, rev)
		if errors.Is(err, state.ErrConflict) {
			continue
		}
		if err != nil {
			return err
		}
		s.metrics.decisions.WithLabelValues(strconv.Itoa(res.Value), res.Reason).Inc()
		return nil
	}
	return errors.New("decision still contended; will retry")
}

// worthPublishing: a decision goes out when its value differs from the last
// one (or, first time, from the column in Dynamics), when a flag's evidence
// changed, or when a user changed the column since our last decision.
func (s *Service) worthPublishing(res decide.Result, last *state.LastDecision, row *state.Row) bool {
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
	case flag.At > last.DecidedAt && current != res.Value && res.Value != decide.Ignore:
		return true
	}
	return false
}

func (s *Service) input(ctx context.Context, org string, row *state.Row) (decide.Input, error) {
	in := decide.Input{Contact: row.Contact(s.cfg.FlagColumn), Threshold: s.cfg.Threshold, InScope: true}
	if id := in.Contact.AccountID; id != "" {
		acct, err := s.store.Row(ctx, org, "account", id)
		if err != nil {
			return in, err
		}
		if acct != nil && !acct.Deleted {
			a := acct.Account()
			in.Account = &a
		}
	}
	members, err := s.store.MembersByEmail(ctx, in.Contact.EmailHashes)
	if err != nil {
		return in, err
	}
	var companyIDs []string
	for _, m := range members {
		in.Members = append(in.Members, m.Decision())
		for _, p := range m.Positions {
			companyIDs = append(companyIDs, p.CompanyID)
		}
	}
	in.Companies, err = s.store.Companies(ctx, uniq(companyIDs))
	return in, err
}

func (s *Service) decision(ref state.ContactRef, res decide.Result, last *state.LastDecision, rev uint64, crmFlag int, cause string) *eventsv1.Decision {
	previous := crmFlag
	if last != nil {
		previous = last.Value
	}
	// Deterministic for a redelivered event (same state, same revision), so
	// a repeated publish is deduplicated; different after any new decision.
	sum := sha256.Sum256(fmt.Appendf(nil, "%s|%s|%s|%d", ref.Org, ref.ID, res.Digest(), rev))
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
