package validator

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/evaluations"
	"github.com/notatcompany/notatcompany/services/validator/decide"
	"github.com/notatcompany/notatcompany/services/validator/state"
)

// Reviews: an admin approves or rejects a contact whose evaluation is below
// the threshold. The review holds for the evidence reviewed: approved, the
// contact is flagged (reason "reviewed", the reviewer on the decision);
// rejected, it stays No Feedback (reason "review_rejected"), sticky like an
// Ignore; once the evidence changes the review applies to nothing and the
// contact is evaluated as any other.

// Review actions and the reasons they lead to.
const (
	reviewApprove = "approve"
	reviewReject  = "reject"

	ReasonReviewed       = "reviewed"
	ReasonReviewRejected = "review_rejected"
)

// Review outcomes in the audit trail.
const (
	reviewApplied = "applied"
	reviewStale   = "stale"
)

// maxReviewer bounds the reviewer's name (bytes), as the admin API does.
const maxReviewer = 100

var digestRE = regexp.MustCompile(`^[0-9a-f]{24}$`)

func validateReview(r *eventsv1.ReviewAction, subject string) error {
	errs := []error{checkEventID(r.GetEventId()), checkGUID("organization_id", r.GetOrganizationId()),
		checkGUID("contact_id", r.GetContactId()), checkTime("requested_at", r.GetRequestedAt(), true)}
	if a := r.GetAction(); a != reviewApprove && a != reviewReject {
		errs = append(errs, fmt.Errorf("action %q: want approve or reject", a))
	}
	if err := checkReviewer(r.GetReviewer()); err != nil {
		errs = append(errs, err)
	}
	if !digestRE.MatchString(r.GetEvidenceDigest()) {
		errs = append(errs, errors.New("evidence_digest: want 24 lower-case hex digits"))
	}
	if err := joinErrs(errs...); err != nil {
		return err
	}
	return checkSubject(subject, bus.AdminReviewSubject(r.GetOrganizationId(), r.GetContactId()))
}

func checkReviewer(v string) error {
	switch {
	case strings.TrimSpace(v) == "":
		return errors.New("reviewer: empty")
	case len(v) > maxReviewer:
		return fmt.Errorf("reviewer: %d bytes, at most %d", len(v), maxReviewer)
	case strings.ContainsFunc(v, func(c rune) bool { return !unicode.IsPrint(c) }):
		return errors.New("reviewer: want printable characters only")
	}
	return nil
}

// handleReview records a review, evaluates the contact under it and audits
// it with who, when and whether it applied to the evidence as it stands.
func (s *Service) handleReview(ctx context.Context, msg jetstream.Msg) error {
	var r eventsv1.ReviewAction
	if err := proto.Unmarshal(msg.Data(), &r); err != nil {
		return bus.Permanent(fmt.Errorf("decode ReviewAction: %w", err))
	}
	if err := validateReview(&r, msg.Subject()); err != nil {
		return invalid("ReviewAction", err)
	}
	clampTime(&r.RequestedAt, arrival(msg, nil))
	ref := state.ContactRef{Org: r.GetOrganizationId(), ID: r.GetContactId()}
	changed, err := s.evals.putReview(ctx, &r)
	if err != nil {
		return err
	}
	if !s.counted("review", changed, msg) {
		return nil
	}
	if err := s.evaluateAll(ctx, "review", []state.ContactRef{ref}, r.GetEventId(), redelivered(msg)); err != nil {
		return err
	}
	rec, _, err := s.evals.get(ctx, evaluations.Key(ref.Org, ref.ID))
	if err != nil {
		return err
	}
	record := proto.CloneOf(&r)
	record.Outcome = reviewStale
	if rec.GetReview().GetEventId() == r.GetEventId() {
		record.Outcome = reviewApplied
	}
	record.RecordedAt = timestamppb.New(s.now())
	s.log.Info("review recorded", "organization", ref.Org, "contact", ref.ID, "action", r.GetAction(), "outcome", record.Outcome)
	return s.pub.PublishProto(ctx, bus.AuditSubject("review", ref.Org), "audit.review."+r.GetEventId(), record)
}

// putReview keeps the contact's latest review (by requested_at); changed
// reports whether it is a new one.
func (es *evaluationStore) putReview(ctx context.Context, r *eventsv1.ReviewAction) (changed bool, err error) {
	key := evaluations.ReviewKey(r.GetOrganizationId(), r.GetContactId())
	data, err := proto.Marshal(r)
	if err != nil {
		return false, err
	}
	for range 5 {
		e, err := es.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			_, err = es.kv.Create(ctx, key, data)
		case err != nil:
			return false, fmt.Errorf("read review %s: %w", key, err)
		default:
			var cur eventsv1.ReviewAction
			if err := proto.Unmarshal(e.Value(), &cur); err != nil {
				return false, fmt.Errorf("decode review %s: %w", key, err)
			}
			if cur.GetEventId() == r.GetEventId() || r.GetRequestedAt().AsTime().Before(cur.GetRequestedAt().AsTime()) {
				return false, nil // this one, or a newer one, is kept
			}
			_, err = es.kv.Update(ctx, key, data, e.Revision())
		}
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return false, fmt.Errorf("store review %s: %w", key, err)
		}
	}
	return false, fmt.Errorf("store review %s: still contended", key)
}

// review reads the contact's latest review; nil when none.
func (es *evaluationStore) review(ctx context.Context, ref state.ContactRef) (*eventsv1.ReviewAction, error) {
	e, err := es.kv.Get(ctx, evaluations.ReviewKey(ref.Org, ref.ID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the review of %s: %w", ref.ID, err)
	}
	var r eventsv1.ReviewAction
	if err := proto.Unmarshal(e.Value(), &r); err != nil {
		return nil, fmt.Errorf("decode the review of %s: %w", ref.ID, err)
	}
	return &r, nil
}

// reviewed applies the contact's review to res when res is below the
// threshold on the very evidence reviewed; only then is the review read,
// so other evaluations cost nothing more. It returns the result, the
// digest of the evidence before any review or Ignore, whether that is a
// candidate for review, and the review that applied.
func (s *Service) reviewed(ctx context.Context, ref state.ContactRef, res decide.Result) (decide.Result, string, bool, *eventsv1.ReviewAction, error) {
	evidence := res.Digest()
	if res.Value == decide.Ignore {
		evidence = res.Underlying
	}
	if res.Reason != decide.ReasonBelowThresh {
		return res, evidence, false, nil, nil
	}
	rv, err := s.evals.review(ctx, ref)
	if err != nil || rv == nil || rv.GetEvidenceDigest() != evidence {
		return res, evidence, true, nil, err
	}
	out := res
	out.Underlying = evidence
	switch rv.GetAction() {
	case reviewApprove:
		out.Value, out.Reason = decide.NotAtCompany, ReasonReviewed
	default:
		out.Reason = ReasonReviewRejected
	}
	return out, evidence, true, rv, nil
}
