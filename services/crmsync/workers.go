package crmsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/orgs"
	"github.com/notatcompany/notatcompany/services/shared/syncjobs"
)

// Service runs the sync workers of one process.
type Service struct {
	cfg            Config
	d              Deps
	js             jetstream.JetStream
	jobs           *jobs
	links          jetstream.KeyValue
	settings       jetstream.KeyValue
	orgs           *orgs.Reader
	decisionStream jetstream.Stream
	pub            *bus.Publisher
	m              *metrics
	log            *slog.Logger
	now            func() time.Time
	// evaluationWait bounds how long a job waits for the validator to
	// apply its contacts, for the count its status reports.
	evaluationWait time.Duration

	// started hands claimed jobs to the loop that runs them.
	started chan claimed
}

type claimed struct {
	org string
	st  syncjobs.Status
	rev uint64
}

// Workers binds the sync workers' consumers and buckets and returns their
// loops: requests, the switch, read-backs, the daily schedule and the jobs.
func Workers(ctx context.Context, cfg Config, d Deps) ([]func(context.Context) error, error) {
	if cfg.Off {
		return nil, nil
	}
	s, err := New(ctx, cfg, d)
	if err != nil {
		return nil, err
	}
	var loops []func(context.Context) error
	for _, c := range []struct {
		stream, name string
		handle       bus.Handler
	}{
		{bus.StreamSync, bus.ConsumerSyncRequests, s.HandleRequest},
		{bus.StreamAdmin, bus.ConsumerSyncAdmin, s.HandleSettings},
		{bus.StreamCRM, bus.ConsumerSyncCRM, s.HandleCRM},
	} {
		cons, err := d.JS.Consumer(ctx, c.stream, c.name)
		if err != nil {
			return nil, fmt.Errorf("bind consumer %s: %w", c.name, err)
		}
		r := &bus.Runner{Name: c.name, Consumer: cons, Handler: c.handle, Publisher: s.pub, Workers: 2,
			Logger: d.Log, Metrics: d.BusMetrics}
		loops = append(loops, r.Run)
	}
	return append(loops, s.RunJobs, s.RunSchedule), nil
}

// New binds what the sync workers use.
func New(ctx context.Context, cfg Config, d Deps) (*Service, error) {
	s := &Service{cfg: cfg, d: d, js: d.JS, pub: bus.NewPublisher(d.JS, 5*time.Second), m: newMetrics(d.Registerer),
		log: d.Log, now: time.Now, started: make(chan claimed, 16), evaluationWait: 2 * time.Minute}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	var err error
	kv := func(name string) jetstream.KeyValue {
		if err != nil {
			return nil
		}
		var b jetstream.KeyValue
		if b, err = d.JS.KeyValue(ctx, name); err != nil {
			err = fmt.Errorf("bind bucket %s: %w", name, err)
		}
		return b
	}
	s.jobs = &jobs{kv: kv(bus.BucketSyncJobs), owner: d.Owner, now: time.Now}
	s.links, s.settings = kv(bus.BucketSyncLinks), kv(bus.BucketOrgs)
	if err != nil {
		return nil, err
	}
	if s.orgs, err = orgs.NewReader(ctx, d.JS); err != nil {
		return nil, err
	}
	if s.decisionStream, err = d.JS.Stream(ctx, bus.StreamDecisions); err != nil {
		return nil, fmt.Errorf("bind stream %s: %w", bus.StreamDecisions, err)
	}
	// Replicas sharing a registry (the devstack's two writers) report the
	// same stored jobs: the first registration serves both.
	var dup prometheus.AlreadyRegisteredError
	if err := d.Registerer.Register(jobCollector{kv: s.jobs.kv, timeout: 2 * time.Second}); err != nil && !errors.As(err, &dup) {
		return nil, fmt.Errorf("register sync job metrics: %w", err)
	}
	return s, nil
}

// HandleRequest claims the job a SyncRequest asks for and hands it to the
// job loop; the claim, stored before the ack, is what a replica that
// outlives this one resumes from.
func (s *Service) HandleRequest(ctx context.Context, msg jetstream.Msg) error {
	var req eventsv1.SyncRequest
	if err := proto.Unmarshal(msg.Data(), &req); err != nil {
		return bus.Permanent(fmt.Errorf("decode SyncRequest: %w", err))
	}
	if err := validateRequest(&req, msg.Subject()); err != nil {
		return bus.Permanent(err)
	}
	cur, _, _, err := s.jobs.get(ctx, req.GetOrganizationId())
	if err != nil {
		return err
	}
	if cur.JobID == req.GetRequestId() {
		return nil // claimed before (a redelivery): running or run
	}
	st, rev, err := s.jobs.claim(ctx, req.GetOrganizationId(), req.GetKind(), req.GetRequestId(), req.GetRequestedAt().AsTime())
	if errors.Is(err, errBusy) {
		return bus.Hold(err, 5*time.Second)
	}
	if err != nil {
		return err
	}
	select {
	case s.started <- claimed{org: req.GetOrganizationId(), st: st, rev: rev}:
		return nil
	case <-ctx.Done():
		// Claimed but not started: the schedule resumes it once stale.
		return nil
	}
}

// HandleSettings requests an enable job when an organization's data
// validation is switched on.
func (s *Service) HandleSettings(ctx context.Context, msg jetstream.Msg) error {
	var c eventsv1.OrgSettingsChange
	if err := proto.Unmarshal(msg.Data(), &c); err != nil {
		return bus.Permanent(fmt.Errorf("decode OrgSettingsChange: %w", err))
	}
	org := c.GetOrganizationId()
	if msg.Subject() != bus.AdminSettingsSubject(org) || !guidRE.MatchString(org) {
		return bus.Permanent(fmt.Errorf("settings change on %s for organization %q", msg.Subject(), org))
	}
	cur, _, _, err := s.jobs.get(ctx, org)
	if err != nil {
		return err
	}
	if c.GetDataValidation() && !cur.DataValidation {
		req := &eventsv1.SyncRequest{RequestId: "enable-" + c.GetEventId(), OrganizationId: org, Kind: syncjobs.KindEnable,
			RequestedAt: timestamppb.New(s.now())}
		if err := s.pub.PublishProto(ctx, bus.SyncRequestSubject(org), req.GetRequestId(), req); err != nil {
			return err
		}
	}
	if cur.DataValidation == c.GetDataValidation() {
		return nil
	}
	return s.jobs.update(ctx, org, func(st *syncjobs.Status) { st.DataValidation = c.GetDataValidation() })
}

// RunJobs runs the jobs this replica claimed until ctx ends; a job cut
// short stores nothing it did not finish, and is resumed once stale.
func (s *Service) RunJobs(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case c := <-s.started:
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.run(ctx, c.org, c.st, c.rev)
			}()
		}
	}
}

// RunSchedule sweeps each organization with data validation on once its
// last job is Interval old, and resumes the jobs of replicas that died.
func (s *Service) RunSchedule(ctx context.Context) error {
	tick := time.NewTicker(30 * time.Second)
	defer tick.Stop()
	for {
		if err := s.schedule(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("sync schedule", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func (s *Service) schedule(ctx context.Context) error {
	keys, err := s.settings.ListKeys(ctx)
	if err != nil {
		return err
	}
	for org := range keys.Keys() {
		if !guidRE.MatchString(org) {
			continue
		}
		on, err := s.orgs.DataValidation(ctx, org)
		if err != nil || !on || s.d.Targets(org) == nil {
			continue
		}
		cur, _, _, err := s.jobs.get(ctx, org)
		if err != nil {
			continue
		}
		kind, id := syncjobs.KindSweep, fmt.Sprintf("sweep-%d", s.now().Unix())
		switch {
		case s.jobs.running(cur):
			continue
		case cur.State == syncjobs.StateRunning: // its replica died
			kind, id = cur.Kind, cur.JobID
		case s.now().Sub(time.UnixMilli(cur.LastOKAt)) < s.cfg.Interval:
			continue
		}
		st, rev, err := s.jobs.claim(ctx, org, kind, id, s.now())
		if err != nil {
			continue
		}
		select {
		case s.started <- claimed{org: org, st: st, rev: rev}:
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}
