package writer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// Dataverse is what the writer needs of one environment.
type Dataverse interface {
	PatchFlag(ctx context.Context, w dataverse.FlagWrite) error
	Batch(ctx context.Context, ws []dataverse.FlagWrite) ([]error, error)
}

// Target is where one organization's decisions go.
type Target struct {
	Dataverse Dataverse // nil: dry run
	Disabled  bool
	Throttle  *Throttle
}

// Targets finds the target of an organization.
type Targets struct {
	ByOrg   map[string]*Target
	Default *Target
}

func (t *Targets) For(org string) *Target { return cmp.Or(t.ByOrg[org], t.Default) }

// Decisions tells which decision is a contact's latest.
type Decisions interface {
	// LastSequence is the stream sequence of the contact's latest decision;
	// jetstream.ErrMsgNotFound when there is none.
	LastSequence(ctx context.Context, org, contact string) (uint64, error)
}

// Switch tells whether data validation is on for an organization; until
// it is switched on (admin API), nothing is written.
type Switch interface {
	DataValidation(ctx context.Context, org string) (bool, error)
}

// Deps are the writer's adapters.
type Deps struct {
	Targets   *Targets
	Switch    Switch    // nil: every organization is on
	Decisions Decisions // nil: every decision handed over is the latest
	// Leases keep writes of one contact from overlapping across workers
	// and replicas; nil: none (one worker, in tests).
	Leases Leases
	// Publisher stores audit records and dead letters.
	Publisher bus.Publishing
	// Settler settles the messages; nil: one with the topology's retry
	// policy of the writer and Publisher.
	Settler *bus.Settler
	// Members opens the member's part of the evidence; nil: the evidence
	// columns get what is not sealed.
	Members MemberOpener
}

// Service is the writer.
type Service struct {
	cfg       Config
	targets   *Targets
	switches  Switch
	decisions Decisions
	leases    Leases
	pub       bus.Publishing
	settler   *bus.Settler
	log       *slog.Logger
	metrics   *Metrics
	failures  *bus.LogLimiter
	backlog   *backlog
	now       func() time.Time
	members   MemberOpener
}

// New returns a writer; m comes from NewMetrics (the targets' clients
// report to it too).
func New(cfg Config, d Deps, log *slog.Logger, m *Metrics) *Service {
	settler := d.Settler
	if settler == nil {
		settler = &bus.Settler{Consumer: bus.ConsumerWriter, Retry: bus.DefaultOptions().RetryFor(bus.ConsumerWriter),
			Publisher: d.Publisher, Logger: log}
	}
	s := &Service{cfg: cfg, targets: d.Targets, switches: d.Switch, decisions: d.Decisions, leases: d.Leases,
		pub: d.Publisher, settler: settler, log: log, metrics: m,
		failures: &bus.LogLimiter{Every: 10 * time.Second}, now: time.Now, members: d.Members}
	s.backlog = m.backlog
	return s
}

// Outcomes of a decision.
const (
	OutcomeWritten    = "written"
	OutcomeWouldWrite = "would_write" // dry run
	OutcomeObsolete   = "obsolete"    // the contact is gone from Dynamics
	OutcomeSkipped    = "skipped"     // nothing to write: Ignore is the user's
	OutcomeSuperseded = "superseded"  // a later decision for the contact came along
	OutcomeDisabled   = "disabled"    // data validation is off for the organization
	OutcomeFailed     = "failed"      // permanent error, set aside
)

// item is one decision on its way.
type item struct {
	msg      jetstream.Msg
	meta     *jetstream.MsgMetadata
	decision *eventsv1.Decision
	out      *eventsv1.WriteOutcome
	// err, when out has no outcome, is why the decision is not settled
	// yet: transient (retried with backoff) or a bus.Hold (a wait).
	err   error
	class string // the failure class of err, for logs and metrics
}

func (it *item) deliveries() int {
	if it.meta == nil {
		return 1
	}
	return int(it.meta.NumDelivered)
}

func (it *item) seq() uint64 {
	if it.meta == nil {
		return 0
	}
	return it.meta.Sequence.Stream
}

// retry leaves the item unsettled: it comes back after err's delay.
func (it *item) retry(class string, err error) { it.class, it.err = class, err }

// HandleBatch writes a batch of decisions and settles every message: acked
// once Dynamics answered 2xx or a permanent outcome is in the audit trail,
// redelivered later otherwise.
func (s *Service) HandleBatch(ctx context.Context, msgs []jetstream.Msg) {
	var items []*item
	for _, m := range msgs {
		meta, _ := m.Metadata()
		d, err := decodeDecision(m)
		if err != nil {
			s.metrics.failures.WithLabelValues(classInvalid).Inc()
			s.settler.Settle(ctx, m, bus.Permanent(err))
			continue
		}
		items = append(items, &item{msg: m, meta: meta, decision: d, out: &eventsv1.WriteOutcome{
			DecisionId: d.GetDecisionId(), OrganizationId: d.GetOrganizationId(), ContactId: d.GetContactId(),
			Value: d.GetValue(), Attempts: int32(deliveries(meta)),
		}})
	}
	// Only the latest decision for a contact is written; latest is by
	// stream sequence (the validators' clocks may disagree, the stream
	// does not).
	latest := map[string]*item{}
	copies := map[*item]bool{}
	for _, it := range items {
		key := it.decision.GetOrganizationId() + "/" + it.decision.GetContactId()
		prev, ok := latest[key]
		if !ok {
			latest[key] = it
			continue
		}
		if it.seq() == prev.seq() {
			// The same message twice (a redelivery met its earlier
			// delivery in one batch): the latest delivery alone is
			// handled and settles the message. Acking the other as
			// superseded would ack the message, whatever became of its
			// write.
			if it.deliveries() > prev.deliveries() {
				copies[prev], latest[key] = true, it
			} else {
				copies[it] = true
			}
			continue
		}
		older := it
		if it.seq() > prev.seq() {
			older, latest[key] = prev, it
		}
		older.out.Outcome = OutcomeSuperseded
		s.metrics.superseded.Inc()
	}
	if len(copies) > 0 {
		items = slices.DeleteFunc(items, func(it *item) bool { return copies[it] })
	}
	byOrg := map[string][]*item{}
	for _, it := range items {
		if it.out.GetOutcome() == "" {
			byOrg[it.decision.GetOrganizationId()] = append(byOrg[it.decision.GetOrganizationId()], it)
		}
	}
	for org, orgItems := range byOrg {
		s.writeOrg(ctx, org, orgItems)
	}
	s.settle(ctx, items)
}

func deliveries(meta *jetstream.MsgMetadata) int {
	if meta == nil {
		return 1
	}
	return int(meta.NumDelivered)
}

// superseded reports whether a newer decision for the item's contact is in
// the stream; an error means it cannot be told, and the item must wait.
func (s *Service) superseded(ctx context.Context, it *item) (bool, error) {
	if s.decisions == nil || it.meta == nil {
		return false, nil
	}
	last, err := s.decisions.LastSequence(ctx, it.decision.GetOrganizationId(), it.decision.GetContactId())
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading the contact's latest decision: %w", err)
	}
	return last > it.seq(), nil
}
