package writer

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/crmschema"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

const (
	orgA    = "5f0c7f10-0000-4000-8000-00000000000a"
	orgB    = "5f0c7f10-0000-4000-8000-00000000000b"
	orgC    = "5f0c7f10-0000-4000-8000-00000000000c"
	flagCol = "nac_orgchangestatus"
	// unset is the flag column's value before the writer touched it: no
	// value the writer sends, so that a write that did not happen shows.
	unset = float64(-1)

	clientID     = "nac-writer"
	clientSecret = "s3cret"
)

// contact returns the id of seeded contact i.
func contact(i int) string { return fmt.Sprintf("7d8c4a0e-0000-4000-8000-%012d", i) }

// unknownContact is a contact Dynamics does not have.
const unknownContact = "7d8c4a0e-0000-4000-8000-0000000fffff"

// --- jetstream.Msg ---

var seqs atomic.Uint64

func msgOf(t testing.TB, d *eventsv1.Decision, delivered uint64) *testkit.Msg {
	t.Helper()
	data, err := proto.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return decisionMsg(bus.DecisionSubject(d.GetOrganizationId(), d.GetContactId()), data, delivered)
}

// decisionMsg is data on subject as the writer's consumer delivers it
// (delivery 0: without metadata).
func decisionMsg(subject string, data []byte, delivered uint64) *testkit.Msg {
	return &testkit.Msg{Subj: subject, Payload: data, Header: nats.Header{"Nats-Msg-Id": []string{"orig"}},
		Delivered: delivered, NoMetadata: delivered == 0, Stream: bus.StreamDecisions, Consumer: bus.ConsumerWriter,
		Seq: seqs.Add(1), Stored: time.Now()}
}

// wantAcked checks each message was acknowledged once and nothing else.
func wantAcked(t testing.TB, ms ...*testkit.Msg) {
	t.Helper()
	for _, m := range ms {
		if acks, naks, terms := m.Settled(); acks != 1 || len(naks) != 0 || len(terms) != 0 {
			t.Errorf("%v: want acked once", m)
		}
	}
}

// wantNaked checks each message was redelivered once, after a delay in
// [lo, hi], and nothing else.
func wantNaked(t testing.TB, lo, hi time.Duration, ms ...*testkit.Msg) {
	t.Helper()
	for _, m := range ms {
		acks, naks, terms := m.Settled()
		if acks != 0 || len(terms) != 0 || len(naks) != 1 {
			t.Errorf("%v: want one nak", m)
			continue
		}
		if d := naks[0].Delay; d < lo || d > hi {
			t.Errorf("%v: nak delay %s, want %s-%s", m, d, lo, hi)
		}
	}
}

// wantTermed checks each message was terminated once and nothing else.
func wantTermed(t testing.TB, ms ...*testkit.Msg) {
	t.Helper()
	for _, m := range ms {
		if acks, naks, terms := m.Settled(); acks != 0 || len(naks) != 0 || len(terms) != 1 || terms[0] == "" {
			t.Errorf("%v: want terminated once with a reason", m)
		}
	}
}

func decision(id, org, contact string, v eventsv1.Flag, at time.Time) *eventsv1.Decision {
	return &eventsv1.Decision{DecisionId: id, OrganizationId: org, ContactId: contact, Value: v,
		Reason: "left_company", DecidedAt: timestamppb.New(at)}
}

// --- Publisher ---

type auditRecord struct {
	subject, msgID string
	outcome        *eventsv1.WriteOutcome
}

type deadLetterRecord struct {
	subject, msgID string
	data           []byte
	header         nats.Header
}

// fakePublisher records audit records and dead letters; auditErr and
// deadErr make the respective publishing fail.
type fakePublisher struct {
	mu       sync.Mutex
	audits   []auditRecord
	dead     []deadLetterRecord
	auditErr error
	deadErr  error
}

func (p *fakePublisher) PublishAll(_ context.Context, out []bus.Outgoing) []error {
	p.mu.Lock()
	defer p.mu.Unlock()
	errs := make([]error, len(out))
	for i, o := range out {
		if p.auditErr != nil {
			errs[i] = p.auditErr
			continue
		}
		wo, ok := o.Message.(*eventsv1.WriteOutcome)
		if !ok {
			errs[i] = fmt.Errorf("unexpected audit message %T", o.Message)
			continue
		}
		p.audits = append(p.audits, auditRecord{o.Subject, o.MsgID, proto.Clone(wo).(*eventsv1.WriteOutcome)})
	}
	return errs
}

// PublishProto records m as PublishAll would.
func (p *fakePublisher) PublishProto(ctx context.Context, subject, msgID string, m proto.Message) error {
	return p.PublishAll(ctx, []bus.Outgoing{{Subject: subject, MsgID: msgID, Message: m}})[0]
}

func (p *fakePublisher) Publish(_ context.Context, subject, msgID string, data []byte, header nats.Header) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.deadErr != nil {
		return p.deadErr
	}
	p.dead = append(p.dead, deadLetterRecord{subject, msgID, slices.Clone(data), nats.Header(http.Header(header).Clone())})
	return nil
}

func (p *fakePublisher) auditRecords() []auditRecord {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.audits)
}

func (p *fakePublisher) deadLetters() []deadLetterRecord {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.dead)
}

// outcomes returns the audit records by decision id; a decision recorded
// twice fails the test.
func (p *fakePublisher) outcomes(t testing.TB) map[string]auditRecord {
	t.Helper()
	out := map[string]auditRecord{}
	for _, r := range p.auditRecords() {
		id := r.outcome.GetDecisionId()
		if _, dup := out[id]; dup {
			t.Errorf("decision %s recorded twice", id)
		}
		out[id] = r
	}
	return out
}

// --- Dataverse stand-in ---

// apiRequest is one request to the stand-in's Web API.
type apiRequest struct {
	method, path string
	status       int
	start, end   time.Time
}

// standin is a dataversetest stand-in on an httptest server that records
// every API request it answered.
type standin struct {
	*dataversetest.Server
	srv *httptest.Server

	started  atomic.Int64 // API requests begun
	mu       sync.Mutex
	requests []apiRequest
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// newStandin starts a stand-in holding contacts with the flag unset.
func newStandin(t testing.TB, opts dataversetest.Options, contacts ...string) *standin {
	t.Helper()
	opts.ClientID, opts.ClientSecret = clientID, clientSecret
	s := &standin{Server: dataversetest.New(opts)}
	for _, c := range contacts {
		s.Seed("contacts", c, map[string]any{"firstname": "Ada", flagCol: unset})
	}
	inner := s.Handler()
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, dataverse.APIPath) {
			inner.ServeHTTP(w, r)
			return
		}
		rec := &statusRecorder{ResponseWriter: w}
		s.started.Add(1)
		start := time.Now()
		inner.ServeHTTP(rec, r)
		s.mu.Lock()
		s.requests = append(s.requests, apiRequest{method: r.Method, path: r.URL.Path, status: rec.status, start: start, end: time.Now()})
		s.mu.Unlock()
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// idle reports whether every Web API request begun was answered.
func (s *standin) idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started.Load() == int64(len(s.requests))
}

// apiRequests returns every Web API request answered so far.
func (s *standin) apiRequests() []apiRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// target is a writer target of org pointing at the stand-in.
func (s *standin) target(org string) TargetConfig {
	return TargetConfig{OrganizationID: org, URL: s.srv.URL, TokenURL: s.srv.URL + dataversetest.TokenPath,
		ClientID: clientID, ClientSecret: clientSecret}
}

// flag returns the contact's flag column in the stand-in.
func (s *standin) flag(t testing.TB, contact string) any {
	t.Helper()
	row, ok := s.Row("contacts", contact)
	if !ok {
		t.Fatalf("contact %s missing from the stand-in", contact)
	}
	return row[flagCol]
}

// --- Dataverse fake ---

// fakeDataverse answers every write with partErr (or, for Batch, the whole
// request with batchErr) and records the writes.
type fakeDataverse struct {
	mu       sync.Mutex
	partErr  error
	batchErr error
	patches  []dataverse.FlagWrite
	batches  [][]dataverse.FlagWrite
}

func (f *fakeDataverse) PatchFlag(_ context.Context, w dataverse.FlagWrite) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.patches = append(f.patches, w)
	if f.batchErr != nil {
		return f.batchErr
	}
	return f.partErr
}

func (f *fakeDataverse) Batch(_ context.Context, ws []dataverse.FlagWrite) ([]error, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batches = append(f.batches, slices.Clone(ws))
	if f.batchErr != nil {
		return nil, f.batchErr
	}
	errs := make([]error, len(ws))
	for i := range errs {
		errs[i] = f.partErr
	}
	return errs, nil
}

// --- service ---

func testConfig() Config {
	return Config{
		FlagColumn: flagCol, WriteTag: "notatcompany", BatchSize: 10,
		Evidence: EvidenceConfig{Columns: crmschema.EvidenceColumns(crmschema.DefaultPrefix)}, Linger: 20 * time.Millisecond,
		Budget:         Budget{Requests: 6000, ExecutionTime: 20 * time.Minute, Window: 5 * time.Minute, Concurrent: 52},
		RequestTimeout: 5 * time.Second, Workers: 1, HandleTimeout: 10 * time.Second,
	}
}

type env struct {
	t   testing.TB
	svc *Service
	pub *fakePublisher
	reg *prometheus.Registry
}

// newEnv returns a writer wired the way Workers wires it: a real
// dataverse.Client and a throttle per configured target.
func newEnv(t testing.TB, cfg Config) *env {
	t.Helper()
	e := &env{t: t, pub: &fakePublisher{}, reg: prometheus.NewRegistry()}
	m := NewMetrics(e.reg)
	log := slog.New(slog.DiscardHandler)
	targets, err := BuildTargets(t.Context(), cfg, m, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.svc = New(cfg, Deps{Targets: targets, Publisher: e.pub}, log, m)
	return e
}

// newFakeEnv returns a writer whose default target is dv.
func newFakeEnv(t testing.TB, cfg Config, dv Dataverse) *env {
	t.Helper()
	e := &env{t: t, pub: &fakePublisher{}, reg: prometheus.NewRegistry()}
	targets := &Targets{ByOrg: map[string]*Target{}, Default: &Target{Dataverse: dv, Throttle: NewThrottle(cfg.Budget)}}
	e.svc = New(cfg, Deps{Targets: targets, Publisher: e.pub}, slog.New(slog.DiscardHandler), NewMetrics(e.reg))
	return e
}

func (e *env) handle(ms ...*testkit.Msg) {
	e.svc.HandleBatch(e.t.Context(), testkit.Batch(ms...))
}

// redeliver plays the server for messages that were redelivered later:
// once the last of their delays has passed, each is delivered again, until
// every one is settled otherwise. It returns the last delivery of each.
func (e *env) redeliver(ms []*testkit.Msg, timeout time.Duration) []*testkit.Msg {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	final := map[uint64]*testkit.Msg{}
	pending := ms
	for len(pending) > 0 {
		var due time.Time
		var next []*testkit.Msg
		for _, m := range pending {
			_, naks, _ := m.Settled()
			if len(naks) == 0 {
				final[m.Seq] = m
				continue
			}
			last := naks[len(naks)-1]
			if at := last.At.Add(last.Delay); at.After(due) {
				due = at
			}
			next = append(next, m.Redelivered())
		}
		if len(next) == 0 {
			break
		}
		if due.After(deadline) {
			e.t.Fatalf("messages still redelivered after %s: %v", timeout, pending)
		}
		time.Sleep(time.Until(due))
		e.handle(next...)
		pending = next
	}
	out := make([]*testkit.Msg, 0, len(ms))
	for _, m := range ms {
		out = append(out, final[m.Seq])
	}
	return out
}

func (e *env) writes(outcome, class string) float64 {
	return testutil.ToFloat64(e.svc.metrics.writes.WithLabelValues(outcome, class))
}

func (e *env) lint() {
	e.t.Helper()
	problems, err := testutil.GatherAndLint(e.reg)
	if err != nil || len(problems) != 0 {
		e.t.Errorf("metric lint: %v %v", problems, err)
	}
}
