package writer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// Dataverse is what the writer needs of one environment.
type Dataverse interface {
	PatchFlag(ctx context.Context, w dataverse.FlagWrite) error
	Batch(ctx context.Context, ws []dataverse.FlagWrite) ([]error, error)
}

// Publisher stores messages in JetStream: audit records and dead letters.
type Publisher interface {
	PublishAll(ctx context.Context, out []bus.Outgoing) []error
	Publish(ctx context.Context, subject, msgID string, data []byte, header nats.Header) error
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
	// LastSequence is the stream sequence of the contact's latest decision.
	LastSequence(ctx context.Context, org, contact string) (uint64, error)
}

// Switch tells whether data validation is on for an organization; until
// it is switched on (admin API), nothing is written.
type Switch interface {
	DataValidation(ctx context.Context, org string) (bool, error)
}

// Service is the writer.
type Service struct {
	cfg        Config
	targets    *Targets
	switches   Switch    // nil: every organization is on
	decisions  Decisions // nil: every decision handed over is the latest
	pub        Publisher
	log        *slog.Logger
	metrics    *metrics
	maxDeliver int
	now        func() time.Time
}

// New returns a writer sending decisions to targets.
func New(cfg Config, targets *Targets, pub Publisher, log *slog.Logger, reg prometheus.Registerer) *Service {
	return &Service{cfg: cfg, targets: targets, pub: pub, log: log, metrics: newMetrics(reg),
		maxDeliver: bus.DefaultOptions().MaxDeliver, now: time.Now}
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
	msg       jetstream.Msg
	meta      *jetstream.MsgMetadata
	decision  *eventsv1.Decision
	out       *eventsv1.WriteOutcome
	retry     time.Duration // > 0: not settled, redeliver after this
	throttled bool          // the retry waits for the budget, not for a fault
	lastError string
}

func (it *item) deliveries() int {
	if it.meta == nil {
		return 1
	}
	return int(it.meta.NumDelivered)
}

// HandleBatch writes a batch of decisions and settles every message: acked
// once Dynamics answered 2xx or a permanent outcome is in the audit trail,
// redelivered later otherwise.
func (s *Service) HandleBatch(ctx context.Context, msgs []jetstream.Msg) {
	var items []*item
	for _, m := range msgs {
		meta, _ := m.Metadata()
		var d eventsv1.Decision
		if err := proto.Unmarshal(m.Data(), &d); err != nil {
			s.deadLetter(ctx, m, meta, fmt.Sprintf("decode Decision: %v", err))
			continue
		}
		items = append(items, &item{msg: m, meta: meta, decision: &d, out: &eventsv1.WriteOutcome{
			DecisionId: d.GetDecisionId(), OrganizationId: d.GetOrganizationId(), ContactId: d.GetContactId(),
			Value: d.GetValue(),
		}})
	}
	byOrg := map[string][]*item{}
	latest := map[string]*item{}
	for _, it := range items {
		it.out.Attempts = int32(it.deliveries())
		key := it.decision.GetOrganizationId() + "/" + it.decision.GetContactId()
		// Only the latest decision for a contact is written.
		if prev, ok := latest[key]; ok {
			older := it
			if it.decision.GetDecidedAt().AsTime().After(prev.decision.GetDecidedAt().AsTime()) {
				older, latest[key] = prev, it
			}
			older.out.Outcome = OutcomeSuperseded
			s.metrics.superseded.Inc()
			continue
		}
		latest[key] = it
	}
	for _, it := range latest {
		// A newer decision may have come along since this one was delivered
		// (and gone to another worker): writing this one could land last.
		if s.superseded(ctx, it) {
			it.out.Outcome = OutcomeSuperseded
			s.metrics.superseded.Inc()
			continue
		}
		byOrg[it.decision.GetOrganizationId()] = append(byOrg[it.decision.GetOrganizationId()], it)
	}
	for org, orgItems := range byOrg {
		s.writeOrg(ctx, org, orgItems)
	}
	s.settle(ctx, items)
}

// superseded reports whether a newer decision for the item's contact is in
// the stream. When that cannot be told, the item is written: the newer
// decision, if any, is written after it by whoever holds it.
func (s *Service) superseded(ctx context.Context, it *item) bool {
	if s.decisions == nil || it.meta == nil {
		return false
	}
	last, err := s.decisions.LastSequence(ctx, it.decision.GetOrganizationId(), it.decision.GetContactId())
	return err == nil && last > it.meta.Sequence.Stream
}

// writeOrg decides or sends every item of one organization.
func (s *Service) writeOrg(ctx context.Context, org string, items []*item) {
	t := s.targets.For(org)
	on := true
	if s.switches != nil {
		var err error
		if on, err = s.switches.DataValidation(ctx, org); err != nil {
			retryAll(items, time.Second, "reading the organization's settings: "+err.Error())
			return
		}
	}
	var send []*item
	for _, it := range items {
		switch {
		case t.Disabled || !on:
			it.out.Outcome = OutcomeDisabled
		case it.decision.GetValue() == eventsv1.Flag_FLAG_IGNORE:
			it.out.Outcome = OutcomeSkipped
		case t.Dataverse == nil:
			it.out.Outcome = OutcomeWouldWrite
		default:
			send = append(send, it)
		}
	}
	for start := 0; start < len(send); start += s.cfg.BatchSize {
		chunk := send[start:min(start+s.cfg.BatchSize, len(send))]
		s.writeChunk(ctx, t, chunk)
	}
}

func (s *Service) writeChunk(ctx context.Context, t *Target, chunk []*item) {
	if d := t.Throttle.Blocked(); d > 0 {
		s.metrics.throttled.WithLabelValues("retry_after").Add(float64(len(chunk)))
		throttleAll(chunk, d, ErrBlocked.Error())
		return
	}
	release, waited, err := t.Throttle.Acquire(ctx, len(chunk))
	s.metrics.throttleWait.Observe(waited.Seconds())
	if err != nil {
		s.metrics.throttled.WithLabelValues("budget").Add(float64(len(chunk)))
		throttleAll(chunk, max(time.Second, t.Throttle.Blocked()), "waiting for the request budget: "+err.Error())
		return
	}
	writes := make([]dataverse.FlagWrite, len(chunk))
	for i, it := range chunk {
		writes[i] = dataverse.FlagWrite{ContactID: it.decision.GetContactId(), Column: s.cfg.FlagColumn,
			Value: int(it.decision.GetValue()), Tag: s.cfg.WriteTag}
	}
	start := time.Now()
	var results []error
	if len(writes) == 1 && s.cfg.BatchSize == 1 {
		results = []error{t.Dataverse.PatchFlag(ctx, writes[0])}
	} else {
		results, err = t.Dataverse.Batch(ctx, writes)
	}
	release()
	latency := time.Since(start)
	s.metrics.latency.Observe(latency.Seconds())
	s.metrics.batchSize.Observe(float64(len(writes)))
	if err != nil {
		// The request as a whole failed: nothing is known of its parts. A
		// 404 for the $batch itself is the endpoint's (a wrong environment
		// URL), not the contacts': set the writes aside rather than record
		// them obsolete and drop them.
		var se *dataverse.StatusError
		if errors.As(err, &se) && se.Status == http.StatusNotFound {
			for _, it := range chunk {
				it.out.Latency = durationpb.New(latency)
				it.out.Outcome, it.out.HttpStatus, it.out.Error = OutcomeFailed, int32(se.Status), "$batch request: "+se.Error()
			}
			return
		}
		s.classify(t, chunk, func(int) error { return err }, latency)
		return
	}
	s.classify(t, chunk, func(i int) error { return results[i] }, latency)
}

// classify turns each write's result into an outcome or a retry.
func (s *Service) classify(t *Target, chunk []*item, result func(int) error, latency time.Duration) {
	for i, it := range chunk {
		err := result(i)
		it.out.Latency = durationpb.New(latency)
		var se *dataverse.StatusError
		switch {
		case err == nil:
			it.out.Outcome, it.out.HttpStatus = OutcomeWritten, 204
		case errors.As(err, &se) && se.Status == 404:
			it.out.Outcome, it.out.HttpStatus, it.out.Error = OutcomeObsolete, 404, se.Error()
		case errors.As(err, &se) && se.Status == 429:
			t.Throttle.Block(cmp.Or(se.RetryAfter, 5*time.Second))
			s.metrics.throttled.WithLabelValues("retry_after").Inc()
			throttleAll([]*item{it}, t.Throttle.Blocked(), se.Error())
			it.out.HttpStatus = 429
		case errors.As(err, &se) && !se.Transient() && se.Status != 401:
			it.out.Outcome, it.out.HttpStatus, it.out.Error = OutcomeFailed, int32(se.Status), se.Error()
		default:
			// 5xx, 401 (after a fresh token), timeouts, the network; a 503
			// may say when to come back.
			delay := bus.BackoffFor(uint64(it.deliveries()))
			if se != nil {
				it.out.HttpStatus = int32(se.Status)
				delay = max(delay, se.RetryAfter)
			}
			it.retry, it.lastError = bus.Jitter(delay), err.Error()
		}
	}
}

func retryAll(items []*item, after time.Duration, reason string) {
	for _, it := range items {
		it.retry, it.lastError = bus.Jitter(after), reason
	}
}

// throttleAll holds items back for the budget: never earlier than after
// (the jitter only adds), and without using up their deliveries.
func throttleAll(items []*item, after time.Duration, reason string) {
	for _, it := range items {
		it.retry = after + time.Duration(rand.Int64N(int64(after)/5+1))
		it.throttled, it.lastError = true, reason
	}
}

// settle records every outcome in the audit trail, then acknowledges what
// is recorded; a decision to retry is redelivered later, or set aside once
// it has used up its deliveries.
func (s *Service) settle(ctx context.Context, items []*item) {
	// The writes are done; recording them must not fail because the batch
	// used up its time. The publisher bounds each wait itself.
	ctx = context.WithoutCancel(ctx)
	var audited []*item
	for _, it := range items {
		if it.retry > 0 && !it.throttled && it.deliveries() >= s.maxDeliver {
			it.out.Outcome, it.out.Error = OutcomeFailed, "gave up after "+strconv.Itoa(it.deliveries())+" deliveries: "+it.lastError
		}
		if it.retry > 0 && it.out.GetOutcome() == "" {
			s.metrics.writes.WithLabelValues("retried", statusClass(int(it.out.GetHttpStatus()))).Inc()
			_ = it.msg.NakWithDelay(it.retry)
			continue
		}
		it.out.RecordedAt = timestamppb.New(s.now())
		audited = append(audited, it)
	}
	out := make([]bus.Outgoing, len(audited))
	for i, it := range audited {
		out[i] = bus.Outgoing{Subject: bus.AuditSubject("write", it.out.GetOrganizationId()),
			MsgID: "write." + it.out.GetDecisionId() + "." + it.out.GetOutcome(), Message: it.out}
	}
	errs := s.pub.PublishAll(ctx, out)
	for i, it := range audited {
		if errs[i] != nil {
			s.log.Warn("audit record not stored; the decision will be redelivered", "err", errs[i])
			_ = it.msg.NakWithDelay(bus.Jitter(time.Second))
			continue
		}
		s.metrics.writes.WithLabelValues(it.out.GetOutcome(), statusClass(int(it.out.GetHttpStatus()))).Inc()
		if it.out.GetOutcome() == OutcomeFailed {
			s.deadLetter(ctx, it.msg, it.meta, it.out.GetError())
			continue
		}
		_ = it.msg.Ack()
	}
}

// deadLetter sets a message aside with its reason and terminates it; when
// that fails it is redelivered, so that nothing is dropped.
func (s *Service) deadLetter(ctx context.Context, m jetstream.Msg, meta *jetstream.MsgMetadata, reason string) {
	if err := bus.DeadLetter(ctx, s.pub, bus.ConsumerWriter, m, meta, reason); err != nil {
		s.log.Error("dead letter failed; the decision will be redelivered", "err", err, "reason", reason)
		_ = m.NakWithDelay(bus.Jitter(5 * time.Second))
		return
	}
	s.log.Error("decision set aside in the dead letter stream", "reason", reason)
	_ = m.TermWithReason(reason[:min(len(reason), 200)])
}

func statusClass(status int) string {
	if status == 0 {
		return "none"
	}
	return strconv.Itoa(status/100) + "xx"
}
