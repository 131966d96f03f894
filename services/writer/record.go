package writer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/notatcompany/notatcompany/services/shared/bus"
)

// settle records every outcome in the audit trail, then settles each
// message: acked once its outcome is recorded, set aside after a permanent
// failure, redelivered otherwise. A decision whose retries the policy gives
// up on is recorded as failed and set aside, never dropped unrecorded.
func (s *Service) settle(ctx context.Context, items []*item) {
	// The writes are done; recording them must not fail because the batch
	// used up its time. The publisher bounds each wait itself.
	ctx = context.WithoutCancel(ctx)
	var audited []*item
	for _, it := range items {
		if it.out.GetOutcome() == "" {
			if !isHold(it.err) && s.settler.GivesUp(it.msg) {
				it.out.Outcome = OutcomeFailed
				it.out.Error = "gave up after " + strconv.Itoa(it.deliveries()) + " deliveries: " + it.err.Error()
			} else {
				s.pending(ctx, it)
				continue
			}
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
			it.retry(classJetStream, fmt.Errorf("audit record not stored: %w", errs[i]))
			it.out.Outcome = ""
			s.pending(ctx, it)
			continue
		}
		s.metrics.writes.WithLabelValues(it.out.GetOutcome(), statusClass(int(it.out.GetHttpStatus()))).Inc()
		s.backlog.done(it)
		s.logOutcome(it)
		switch it.out.GetOutcome() {
		case OutcomeFailed:
			s.metrics.failures.WithLabelValues(it.class).Inc()
			s.settler.Settle(ctx, it.msg, bus.Permanent(errors.New(it.out.GetError())))
		case OutcomeObsolete:
			s.metrics.failures.WithLabelValues(classNotFound).Inc()
			s.settler.Settle(ctx, it.msg, nil)
		default:
			s.settler.Settle(ctx, it.msg, nil)
		}
	}
}

// pending settles an item that is not done yet: counted and logged by its
// failure class (at most one line per class every 10 s), kept in the
// backlog, and redelivered after its delay.
func (s *Service) pending(ctx context.Context, it *item) {
	outcome := "retried"
	if isHold(it.err) {
		outcome = "held"
	}
	s.metrics.writes.WithLabelValues(outcome, statusClass(int(it.out.GetHttpStatus()))).Inc()
	s.metrics.failures.WithLabelValues(it.class).Inc()
	if ok, n := s.failures.Allow(it.class); ok && it.class != classLeaseHeld {
		s.log.Warn("decision not written yet; it comes back later", "class", it.class, "organization", it.out.GetOrganizationId(),
			"deliveries", it.deliveries(), "err", it.err, "suppressed", n)
	}
	settled := s.settler.Settle(ctx, it.msg, it.err)
	if settled.Outcome == bus.OutcomeDeadLettered {
		s.backlog.done(it)
		return
	}
	s.backlog.hold(it, settled.Delay)
}

func isHold(err error) bool { return bus.IsHold(err) }

func statusClass(status int) string {
	if status == 0 {
		return "none"
	}
	return strconv.Itoa(status/100) + "xx"
}

// backlog is the decisions this replica holds back or retries, by
// organization and failure class: nac_writer_backlog. A decision counts
// until it is settled for good or, once redelivered to another replica,
// shortly after its redelivery was due.
type backlog struct {
	now  func() time.Time
	desc *prometheus.Desc

	mu      sync.Mutex
	entries map[uint64]backlogEntry // by stream sequence
}

type backlogEntry struct {
	org, class string
	until      time.Time
}

// backlogGrace is how long past its redelivery a decision still counts.
const backlogGrace = 30 * time.Second

func newBacklog() *backlog {
	return &backlog{now: time.Now, entries: map[uint64]backlogEntry{}, desc: prometheus.NewDesc("nac_writer_backlog",
		"Decisions held back or being retried by this replica, by organization and failure class.",
		[]string{"organization", "class"}, nil)}
}

func (b *backlog) hold(it *item, delay time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.entries[it.seq()] = backlogEntry{org: it.out.GetOrganizationId(), class: it.class, until: b.now().Add(delay + backlogGrace)}
}

func (b *backlog) done(it *item) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.entries, it.seq())
}

// Counts returns the backlog by organization and class.
func (b *backlog) counts() map[[2]string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	out := map[[2]string]int{}
	for seq, e := range b.entries {
		if now.After(e.until) {
			delete(b.entries, seq)
			continue
		}
		out[[2]string{e.org, e.class}]++
	}
	return out
}

func (b *backlog) Describe(ch chan<- *prometheus.Desc) { ch <- b.desc }

func (b *backlog) Collect(ch chan<- prometheus.Metric) {
	for k, n := range b.counts() {
		ch <- prometheus.MustNewConstMetric(b.desc, prometheus.GaugeValue, float64(n), k[0], k[1])
	}
}
