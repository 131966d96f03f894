package validator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/evaluations"
	"github.com/notatcompany/notatcompany/services/validator/decide"
	"github.com/notatcompany/notatcompany/services/validator/state"
)

// The latest evaluation of each contact is kept whatever its outcome, for
// the admin API's explain and lists: a decision goes out only when it
// changes, so without it "why is this contact not flagged?" has no answer.
// It is stored only when its content changes: most evaluations cost one
// read and no write. Its member evidence is sealed as a decision's is, so
// an erasure leaves it unreadable.

// evaluationStore is the nac_evaluations bucket.
type evaluationStore struct {
	kv     jetstream.KeyValue
	stored *prometheus.CounterVec
}

func openEvaluations(ctx context.Context, js jetstream.JetStream, reg prometheus.Registerer) (*evaluationStore, error) {
	kv, err := js.KeyValue(ctx, bus.BucketEvaluations)
	if err != nil {
		return nil, fmt.Errorf("bind bucket %s: %w", bus.BucketEvaluations, err)
	}
	stored := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nac_validator_evaluations_kept_total",
		Help: "Latest evaluations kept for explain, by outcome: stored (its content changed) or unchanged (no write).",
	}, []string{"outcome"})
	reg.MustRegister(stored)
	return &evaluationStore{kv: kv, stored: stored}, nil
}

// indexMarkerTTL is how long the marker of a purged index key stays.
const indexMarkerTTL = time.Minute

// errEvaluationConflict: another replica stored the contact's evaluation
// between this one's read and write; the contact is evaluated again.
var errEvaluationConflict = errors.New("evaluation stored concurrently")

// evaluated is what one evaluation found, beside its result.
type evaluated struct {
	ref   state.ContactRef
	res   decide.Result // after a review
	in    decide.Input
	scope *eventsv1.ScopePath
	// evidence is the digest of the outcome before a review or a user's
	// Ignore; candidate: that outcome is below the threshold.
	evidence  string
	candidate bool
	review    *eventsv1.ReviewAction
	flag      state.Cell // the flag column as the state holds it
	last      *LastDecision
	cause     string
	// sealed is the evidence a decision of this evaluation sealed: the
	// same evidence is kept without sealing it again.
	sealed *sealedEvidence
	// read: the evaluation kept before (prev, at revision rev; nil, 0:
	// none) and the contact's open opportunities were read with the rest
	// of its group, instead of here.
	read *keptRead
}

// keptRead is what keep would otherwise read itself.
type keptRead struct {
	prev *eventsv1.Evaluation
	rev  uint64
	opps []state.Opportunity
}

// sealedEvidence is evidence before and after sealing.
type sealedEvidence struct{ plain, sealed *eventsv1.Evidence }

// keep stores the evaluation when its content differs from the one kept:
// the index keys first (those that go and those that come), then the
// evaluation, compare-and-set on its revision.
func (s *Service) keep(ctx context.Context, ev evaluated) error {
	rec := &eventsv1.Evaluation{}
	if ev.res.Value == decide.NotAtCompany {
		var opps []state.Opportunity
		var err error
		if ev.read != nil {
			opps = ev.read.opps
		} else if opps, err = s.store.OpenOpportunitiesOf(ctx, ev.ref.Org, ev.ref.ID); err != nil {
			return err
		}
		for _, o := range opps {
			ref := &eventsv1.OpportunityRef{OpportunityId: o.ID, OwnerId: o.Owner, AccountId: o.Account}
			for _, l := range o.Links {
				ref.Links = append(ref.Links, &eventsv1.OpportunityLink{Via: l.Via, ConnectionId: l.Connection, RoleId: l.Role})
			}
			rec.OpenOpportunities = append(rec.OpenOpportunities, ref)
		}
	}
	s.fillRecord(rec, ev)
	digest, err := contentDigest(rec)
	if err != nil {
		return err
	}
	key := evaluations.Key(ev.ref.Org, ev.ref.ID)
	var prev *eventsv1.Evaluation
	var rev uint64
	if ev.read != nil {
		prev, rev = ev.read.prev, ev.read.rev
	} else if prev, rev, err = s.evals.get(ctx, key); err != nil {
		return err
	}
	if prev != nil && prev.GetDigest() == digest {
		s.evals.stored.WithLabelValues("unchanged").Inc()
		return nil
	}
	rec.Digest = digest
	rec.Result.DecidedAt, rec.Result.CauseEventId = timestamppb.New(s.now()), ev.cause
	if ev.flag.At > 0 {
		rec.CrmFlagVersion = timestamppb.New(time.UnixMilli(ev.flag.At))
	}
	if ev.sealed != nil && proto.Equal(ev.sealed.plain, rec.Result.Evidence) {
		rec.Result.Evidence = proto.CloneOf(ev.sealed.sealed)
	} else if err := s.seal(ctx, ev.ref.Org, ev.ref.ID, rec.Result.Evidence); err != nil {
		return err
	}
	if err := s.evals.reindex(ctx, ev.ref, prev, rec); err != nil {
		return err
	}
	data, err := proto.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode evaluation: %w", err)
	}
	if rev == 0 {
		_, err = s.evals.kv.Create(ctx, key, data)
	} else {
		_, err = s.evals.kv.Update(ctx, key, data, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return errEvaluationConflict
	}
	if err != nil {
		return fmt.Errorf("store the evaluation of %s: %w", ev.ref.ID, err)
	}
	s.evals.stored.WithLabelValues("stored").Inc()
	return nil
}

// fillRecord puts what the evaluation found into rec, the member evidence
// not sealed yet and without the times, so that its digest says whether
// anything a reader cares for changed.
func (s *Service) fillRecord(rec *eventsv1.Evaluation, ev evaluated) {
	d := &eventsv1.Decision{
		OrganizationId: ev.ref.Org, ContactId: ev.ref.ID, Value: eventsv1.Flag(ev.res.Value),
		Reason: ev.res.Reason, Confidence: ev.res.Confidence, Evidence: evidenceOf(ev.res.Evidence),
	}
	if ev.review != nil && ev.review.GetAction() == reviewApprove {
		d.Reviewer = ev.review.GetReviewer()
	}
	rec.Result, rec.Scope, rec.Threshold = d, ev.scope, ev.in.Threshold
	rec.MaxProfileAge = durationpb.New(ev.in.MaxProfileAge)
	rec.CrmFlag = eventsv1.Flag(flagValue(ev.flag))
	rec.Candidate, rec.EvidenceDigest, rec.Review = ev.candidate, ev.evidence, ev.review
	rec.AccountId = ev.in.Contact.AccountID
	if ev.last != nil {
		rec.LastDecisionId = ev.last.Decision.GetDecisionId()
	}
}

func flagValue(c state.Cell) int {
	v, _ := strconv.Atoi(c.V)
	return v
}

// contentDigest identifies rec's content: its deterministic encoding, the
// times and the cause left out.
func contentDigest(rec *eventsv1.Evaluation) (string, error) {
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(rec)
	if err != nil {
		return "", fmt.Errorf("encode evaluation: %w", err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:12]), nil
}

// keptOf reads the kept evaluations of refs in one request, with their
// revisions; a contact without one is not in the map.
func (s *Service) keptOf(ctx context.Context, refs []state.ContactRef) (map[state.ContactRef]keptRead, error) {
	subjects := make([]string, 0, len(refs))
	bySubject := make(map[string]state.ContactRef, len(refs))
	for _, r := range refs {
		subj := "$KV." + bus.BucketEvaluations + "." + evaluations.Key(r.Org, r.ID)
		bySubject[subj] = r
		subjects = append(subjects, subj)
	}
	msgs, err := s.store.LastMessages(ctx, "KV_"+bus.BucketEvaluations, subjects)
	if err != nil {
		return nil, fmt.Errorf("read %d kept evaluations: %w", len(refs), err)
	}
	out := make(map[state.ContactRef]keptRead, len(msgs))
	for _, m := range msgs {
		ref, ok := bySubject[m.Subject]
		if !ok || m.Deleted {
			continue
		}
		var rec eventsv1.Evaluation
		if err := proto.Unmarshal(m.Data, &rec); err != nil {
			return nil, fmt.Errorf("decode evaluation %s: %w", m.Subject, err)
		}
		out[ref] = keptRead{prev: &rec, rev: m.Seq}
	}
	return out, nil
}

// get reads a kept evaluation and its revision; nil, 0 when none.
func (es *evaluationStore) get(ctx context.Context, key string) (*eventsv1.Evaluation, uint64, error) {
	e, err := es.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read evaluation %s: %w", key, err)
	}
	var rec eventsv1.Evaluation
	if err := proto.Unmarshal(e.Value(), &rec); err != nil {
		return nil, 0, fmt.Errorf("decode evaluation %s: %w", key, err)
	}
	return &rec, e.Revision(), nil
}

// indexKeys are the index keys an evaluation holds: flagged, and each of
// its open opportunities at risk, when it flags; candidate when it is below
// the threshold and not reviewed.
func indexKeys(ref state.ContactRef, rec *eventsv1.Evaluation) map[string]evaluations.IndexEntry {
	if rec == nil {
		return nil
	}
	r := rec.GetResult()
	entry := evaluations.IndexEntry{Contact: ref.ID, Reason: r.GetReason(), Confidence: r.GetConfidence()}
	out := map[string]evaluations.IndexEntry{}
	if r.GetValue() == eventsv1.Flag_FLAG_NOT_AT_COMPANY {
		out[evaluations.FlaggedKey(ref.Org, ref.ID)] = entry
		for _, o := range rec.GetOpenOpportunities() {
			risk := entry
			risk.Opportunity, risk.Owner = o.GetOpportunityId(), o.GetOwnerId()
			out[evaluations.AtRiskKey(ref.Org, o.GetOpportunityId(), ref.ID)] = risk
		}
	}
	if rec.GetCandidate() && rec.GetReview() == nil {
		out[evaluations.CandidateKey(ref.Org, ref.ID)] = entry
	}
	return out
}

// reindex makes the index keys those of next: it purges the keys of prev
// that next does not hold and puts those that are new or changed. It goes
// before the evaluation is stored, so a failure in between is repeated on
// the retry, which still finds prev.
func (es *evaluationStore) reindex(ctx context.Context, ref state.ContactRef, prev, next *eventsv1.Evaluation) error {
	before, after := indexKeys(ref, prev), indexKeys(ref, next)
	for key := range before {
		if _, ok := after[key]; ok {
			continue
		}
		if err := es.kv.Purge(ctx, key, jetstream.PurgeTTL(indexMarkerTTL)); err != nil {
			return fmt.Errorf("purge index key %s: %w", key, err)
		}
	}
	for key, entry := range after {
		if old, ok := before[key]; ok && old == entry {
			continue
		}
		data, err := json.Marshal(entry)
		if err != nil {
			return err
		}
		if _, err := es.kv.Put(ctx, key, data); err != nil {
			return fmt.Errorf("put index key %s: %w", key, err)
		}
	}
	return nil
}
