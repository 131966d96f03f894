package writer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// FlagWriter writes one contact's flag; nil in a dry run.
type FlagWriter interface {
	PatchFlag(ctx context.Context, w dataverse.FlagWrite) error
}

// Publisher stores a protobuf message in JetStream; nil means stored.
type Publisher interface {
	PublishProto(ctx context.Context, subject, msgID string, m proto.Message) error
}

// Service is the writer.
type Service struct {
	cfg     Config
	dv      FlagWriter // nil: dry run
	pub     Publisher
	log     *slog.Logger
	metrics *metrics
	now     func() time.Time
}

// New returns a writer sending through dv (nil for a dry run).
func New(cfg Config, dv FlagWriter, pub Publisher, log *slog.Logger, reg prometheus.Registerer) *Service {
	return &Service{cfg: cfg, dv: dv, pub: pub, log: log, metrics: newMetrics(reg), now: time.Now}
}

// Outcomes of a decision.
const (
	OutcomeWritten    = "written"
	OutcomeWouldWrite = "would_write"
	OutcomeObsolete   = "obsolete"
	OutcomeSkipped    = "skipped"
	OutcomeFailed     = "failed"
)

// HandleDecision writes one decision. It returns nil once Dynamics answered
// 2xx or a permanent outcome is recorded in the audit trail.
func (s *Service) HandleDecision(ctx context.Context, msg jetstream.Msg) error {
	var d eventsv1.Decision
	if err := proto.Unmarshal(msg.Data(), &d); err != nil {
		return bus.Permanent(fmt.Errorf("decode Decision: %w", err))
	}
	attempts := 1
	if meta, err := msg.Metadata(); err == nil {
		attempts = int(meta.NumDelivered)
	}
	out := &eventsv1.WriteOutcome{
		DecisionId: d.GetDecisionId(), OrganizationId: d.GetOrganizationId(), ContactId: d.GetContactId(),
		Value: d.GetValue(), Attempts: int32(attempts),
	}
	switch {
	case d.GetValue() == eventsv1.Flag_FLAG_IGNORE:
		// Ignore is the user's word, already in Dynamics: never written by us.
		out.Outcome = OutcomeSkipped
		return s.record(ctx, out)
	case s.dv == nil:
		out.Outcome = OutcomeWouldWrite
		return s.record(ctx, out)
	}

	start := time.Now()
	err := s.dv.PatchFlag(ctx, dataverse.FlagWrite{
		ContactID: d.GetContactId(), Column: s.cfg.FlagColumn, Value: int(d.GetValue()), Tag: s.cfg.WriteTag,
	})
	latency := time.Since(start)
	s.metrics.latency.Observe(latency.Seconds())
	out.Latency = durationpb.New(latency)

	var se *dataverse.StatusError
	switch {
	case err == nil:
		out.Outcome, out.HttpStatus = OutcomeWritten, 204
	case errors.As(err, &se) && se.Status == 404:
		// The contact was deleted in Dynamics; the decision is moot.
		out.Outcome, out.HttpStatus, out.Error = OutcomeObsolete, 404, se.Error()
	case errors.As(err, &se) && !se.Transient() && se.Status != 401:
		out.Outcome, out.HttpStatus, out.Error = OutcomeFailed, int32(se.Status), se.Error()
		if recErr := s.record(ctx, out); recErr != nil {
			return recErr
		}
		return bus.Permanent(fmt.Errorf("write contact %s: %w", d.GetContactId(), err))
	default:
		// 429, 5xx, 401 (token), timeouts, network: retried with backoff.
		status := 0
		if se != nil {
			status = se.Status
		}
		s.metrics.writes.WithLabelValues("retried", statusClass(status)).Inc()
		return fmt.Errorf("write contact %s: %w", d.GetContactId(), err)
	}
	return s.record(ctx, out)
}

func (s *Service) record(ctx context.Context, out *eventsv1.WriteOutcome) error {
	out.RecordedAt = timestamppb.New(s.now())
	s.metrics.writes.WithLabelValues(out.GetOutcome(), statusClass(int(out.GetHttpStatus()))).Inc()
	msgID := "write." + out.GetDecisionId() + "." + out.GetOutcome()
	if err := s.pub.PublishProto(ctx, bus.AuditSubject("write", out.GetOrganizationId()), msgID, out); err != nil {
		return fmt.Errorf("audit write outcome: %w", err)
	}
	s.log.Debug("decision handled", "decision", out.GetDecisionId(), "outcome", out.GetOutcome(), "status", out.GetHttpStatus())
	return nil
}

func statusClass(status int) string {
	if status == 0 {
		return "none"
	}
	return strconv.Itoa(status/100) + "xx"
}
