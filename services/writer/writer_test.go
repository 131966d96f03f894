package writer

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
)

const (
	org       = "5f0c7f10-0000-4000-8000-00000000000a"
	contactID = "7d8c4a0e-0000-4000-8000-000000000001"
	unknownID = "7d8c4a0e-0000-4000-8000-0000000000ff"
	flagCol   = "nac_orgchangestatus"
)

// fakeMsg is a jetstream.Msg as the consumer hands it to the handler.
type fakeMsg struct {
	data      []byte
	delivered uint64
}

func (m *fakeMsg) Metadata() (*jetstream.MsgMetadata, error) {
	if m.delivered == 0 {
		return nil, errors.New("no metadata")
	}
	return &jetstream.MsgMetadata{NumDelivered: m.delivered, Stream: bus.StreamDecisions}, nil
}
func (m *fakeMsg) Data() []byte                     { return m.data }
func (m *fakeMsg) Headers() nats.Header             { return nil }
func (m *fakeMsg) Subject() string                  { return bus.DecisionSubject(org, contactID) }
func (m *fakeMsg) Reply() string                    { return "" }
func (m *fakeMsg) Ack() error                       { return nil }
func (m *fakeMsg) DoubleAck(context.Context) error  { return nil }
func (m *fakeMsg) Nak() error                       { return nil }
func (m *fakeMsg) NakWithDelay(time.Duration) error { return nil }
func (m *fakeMsg) InProgress() error                { return nil }
func (m *fakeMsg) Term() error                      { return nil }
func (m *fakeMsg) TermWithReason(string) error      { return nil }

// published is one message the fake publisher was given.
type published struct {
	subject, msgID string
	outcome        *eventsv1.WriteOutcome
}

type fakePublisher struct {
	mu   sync.Mutex
	msgs []published
	err  error
}

func (p *fakePublisher) PublishProto(_ context.Context, subject, msgID string, m proto.Message) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.err
	}
	p.msgs = append(p.msgs, published{subject, msgID, proto.Clone(m).(*eventsv1.WriteOutcome)})
	return nil
}

func (p *fakePublisher) all() []published {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]published(nil), p.msgs...)
}

// fakeWriter answers every write with err.
type fakeWriter struct {
	err    error
	writes []dataverse.FlagWrite
}

func (w *fakeWriter) PatchFlag(_ context.Context, fw dataverse.FlagWrite) error {
	w.writes = append(w.writes, fw)
	return w.err
}

func config() Config {
	return Config{FlagColumn: flagCol, WriteTag: "notatcompany", RequestTimeout: 5 * time.Second, Workers: 1, HandleTimeout: 10 * time.Second}
}

type env struct {
	t       *testing.T
	svc     *Service
	pub     *fakePublisher
	reg     *prometheus.Registry
	standin *dataversetest.Server
}

// newEnv returns a writer sending through dv; nil dv means a real client
// of a stand-in, and dry means none at all.
func newEnv(t *testing.T, dv FlagWriter, dry bool) *env {
	t.Helper()
	e := &env{t: t, pub: &fakePublisher{}, reg: prometheus.NewRegistry()}
	e.standin = dataversetest.New(dataversetest.Options{ClientID: "client", ClientSecret: "secret"})
	e.standin.Seed("contacts", contactID, map[string]any{"firstname": "Ada", flagCol: 0})
	srv := httptest.NewServer(e.standin.Handler())
	t.Cleanup(srv.Close)
	if dv == nil && !dry {
		client, err := dataverse.New(t.Context(), srv.URL, dataverse.Credentials{
			TokenURL: srv.URL + dataversetest.TokenPath, ClientID: "client", ClientSecret: "secret",
		}, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		dv = client
	}
	e.svc = New(config(), dv, e.pub, slog.New(slog.DiscardHandler), e.reg)
	return e
}

func decision(id, contact string, value eventsv1.Flag) *eventsv1.Decision {
	return &eventsv1.Decision{DecisionId: id, OrganizationId: org, ContactId: contact, Value: value, Reason: "left_company"}
}

func msgOf(t *testing.T, d *eventsv1.Decision, delivered uint64) *fakeMsg {
	t.Helper()
	data, err := proto.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	return &fakeMsg{data: data, delivered: delivered}
}

// onlyOutcome returns the one audit record published.
func (e *env) onlyOutcome() published {
	e.t.Helper()
	msgs := e.pub.all()
	if len(msgs) != 1 {
		e.t.Fatalf("%d audit records, want 1: %v", len(msgs), msgs)
	}
	return msgs[0]
}

func (e *env) writes(outcome, class string) float64 {
	return testutil.ToFloat64(e.svc.metrics.writes.WithLabelValues(outcome, class))
}

func (e *env) lint() {
	e.t.Helper()
	if problems, err := testutil.GatherAndLint(e.reg); err != nil || len(problems) != 0 {
		e.t.Errorf("metric lint: %v %v", problems, err)
	}
}

func TestWritten(t *testing.T) {
	e := newEnv(t, nil, false)
	ctx := t.Context()
	if err := e.svc.HandleDecision(ctx, msgOf(t, decision("d1", contactID, eventsv1.Flag_FLAG_NOT_AT_COMPANY), 2)); err != nil {
		t.Fatal(err)
	}
	row, ok := e.standin.Row("contacts", contactID)
	if !ok || row[flagCol] != float64(1) || row["firstname"] != "Ada" {
		t.Errorf("stand-in row = %v, want %s = 1", row, flagCol)
	}
	if e.standin.Patches() != 1 {
		t.Errorf("%d patches, want 1", e.standin.Patches())
	}
	p := e.onlyOutcome()
	if p.subject != bus.AuditSubject("write", org) || p.msgID != "write.d1.written" {
		t.Errorf("audit published to %s as %s", p.subject, p.msgID)
	}
	o := p.outcome
	if o.GetOutcome() != OutcomeWritten || o.GetHttpStatus() != 204 || o.GetDecisionId() != "d1" || o.GetContactId() != contactID ||
		o.GetOrganizationId() != org || o.GetValue() != eventsv1.Flag_FLAG_NOT_AT_COMPANY || o.GetAttempts() != 2 || o.GetError() != "" {
		t.Errorf("outcome = %v", o)
	}
	if o.GetLatency() == nil || o.GetRecordedAt() == nil {
		t.Errorf("outcome without latency or time: %v", o)
	}
	if got := e.writes(OutcomeWritten, "2xx"); got != 1 {
		t.Errorf("writes{written,2xx} = %v", got)
	}

	// Back to No Feedback writes 0.
	if err := e.svc.HandleDecision(ctx, msgOf(t, decision("d2", contactID, eventsv1.Flag_FLAG_NO_FEEDBACK), 1)); err != nil {
		t.Fatal(err)
	}
	if row, _ := e.standin.Row("contacts", contactID); row[flagCol] != float64(0) {
		t.Errorf("stand-in %s = %v, want 0", flagCol, row[flagCol])
	}
	e.lint()
}

func TestUnknownContactIsObsolete(t *testing.T) {
	e := newEnv(t, nil, false)
	if err := e.svc.HandleDecision(t.Context(), msgOf(t, decision("d1", unknownID, eventsv1.Flag_FLAG_NOT_AT_COMPANY), 1)); err != nil {
		t.Fatalf("err = %v, want nil (nothing left to do)", err)
	}
	o := e.onlyOutcome().outcome
	if o.GetOutcome() != OutcomeObsolete || o.GetHttpStatus() != 404 || o.GetError() == "" {
		t.Errorf("outcome = %v", o)
	}
	// If-Match: * kept the PATCH from creating the row.
	if row, ok := e.standin.Row("contacts", unknownID); ok {
		t.Errorf("the write created the contact: %v", row)
	}
	if e.standin.Patches() != 0 {
		t.Errorf("%d patches applied", e.standin.Patches())
	}
	e.lint()
}

func TestIgnoreIsSkipped(t *testing.T) {
	e := newEnv(t, nil, false)
	if err := e.svc.HandleDecision(t.Context(), msgOf(t, decision("d1", contactID, eventsv1.Flag_FLAG_IGNORE), 1)); err != nil {
		t.Fatal(err)
	}
	if e.standin.Patches() != 0 {
		t.Errorf("%d patches for an Ignore", e.standin.Patches())
	}
	if row, _ := e.standin.Row("contacts", contactID); row[flagCol] != 0 {
		t.Errorf("flag = %v", row[flagCol])
	}
	o := e.onlyOutcome().outcome
	if o.GetOutcome() != OutcomeSkipped || o.GetHttpStatus() != 0 || o.GetValue() != eventsv1.Flag_FLAG_IGNORE {
		t.Errorf("outcome = %v", o)
	}
	if got := e.writes(OutcomeSkipped, "none"); got != 1 {
		t.Errorf("writes{skipped,none} = %v", got)
	}
}

func TestDryRun(t *testing.T) {
	e := newEnv(t, nil, true)
	if e.svc.dv != nil {
		t.Fatal("dry run has a writer")
	}
	if err := e.svc.HandleDecision(t.Context(), msgOf(t, decision("d1", contactID, eventsv1.Flag_FLAG_NOT_AT_COMPANY), 1)); err != nil {
		t.Fatal(err)
	}
	if e.standin.Patches() != 0 {
		t.Errorf("%d patches in a dry run", e.standin.Patches())
	}
	p := e.onlyOutcome()
	if p.outcome.GetOutcome() != OutcomeWouldWrite || p.outcome.GetHttpStatus() != 0 || p.msgID != "write.d1.would_write" {
		t.Errorf("outcome = %v as %s", p.outcome, p.msgID)
	}
	e.lint()
}

func TestTransientFailuresAreRetried(t *testing.T) {
	for name, err := range map[string]error{
		"429":     &dataverse.StatusError{Status: 429, Message: "Too Many Requests", RetryAfter: 5 * time.Second},
		"503":     &dataverse.StatusError{Status: 503, Message: "Service Unavailable"},
		"401":     &dataverse.StatusError{Status: 401, Message: "token expired"},
		"network": errors.New("dial tcp: connection refused"),
		"timeout": context.DeadlineExceeded,
	} {
		t.Run(name, func(t *testing.T) {
			fw := &fakeWriter{err: err}
			e := newEnv(t, fw, false)
			got := e.svc.HandleDecision(t.Context(), msgOf(t, decision("d1", contactID, eventsv1.Flag_FLAG_NOT_AT_COMPANY), 1))
			if got == nil || bus.IsPermanent(got) {
				t.Fatalf("err = %v, want a transient error", got)
			}
			if !errors.Is(got, err) {
				t.Errorf("err = %v, does not wrap %v", got, err)
			}
			if msgs := e.pub.all(); len(msgs) != 0 {
				t.Errorf("audit records for a retried write: %v", msgs)
			}
			if len(fw.writes) != 1 {
				t.Fatalf("%d writes", len(fw.writes))
			}
			want := dataverse.FlagWrite{ContactID: contactID, Column: flagCol, Value: 1, Tag: "notatcompany"}
			if fw.writes[0] != want {
				t.Errorf("write = %+v, want %+v", fw.writes[0], want)
			}
			var se *dataverse.StatusError
			class := "none"
			if errors.As(err, &se) {
				class = name[:1] + "xx"
			}
			if n := e.writes("retried", class); n != 1 {
				t.Errorf("writes{retried,%s} = %v", class, n)
			}
			e.lint()
		})
	}
}

func TestPermanentFailureIsAudited(t *testing.T) {
	for _, status := range []int{400, 403, 412} {
		fw := &fakeWriter{err: &dataverse.StatusError{Status: status, Code: "0x80048d19", Message: "bad payload"}}
		e := newEnv(t, fw, false)
		err := e.svc.HandleDecision(t.Context(), msgOf(t, decision("d1", contactID, eventsv1.Flag_FLAG_NOT_AT_COMPANY), 1))
		if err == nil || !bus.IsPermanent(err) {
			t.Fatalf("%d: err = %v, want permanent", status, err)
		}
		p := e.onlyOutcome()
		o := p.outcome
		if o.GetOutcome() != OutcomeFailed || o.GetHttpStatus() != int32(status) || !strings.Contains(o.GetError(), "bad payload") {
			t.Errorf("%d: outcome = %v", status, o)
		}
		if p.msgID != "write.d1.failed" {
			t.Errorf("%d: msg id %s", status, p.msgID)
		}
		if n := e.writes(OutcomeFailed, "4xx"); n != 1 {
			t.Errorf("%d: writes{failed,4xx} = %v", status, n)
		}
		e.lint()
	}
}

func TestAuditFailureIsTransient(t *testing.T) {
	e := newEnv(t, nil, false)
	e.pub.err = bus.ErrNotStored
	err := e.svc.HandleDecision(t.Context(), msgOf(t, decision("d1", contactID, eventsv1.Flag_FLAG_NOT_AT_COMPANY), 1))
	if err == nil || bus.IsPermanent(err) || !errors.Is(err, bus.ErrNotStored) {
		t.Fatalf("err = %v, want a transient error", err)
	}
	// A permanent write failure whose audit cannot be recorded is retried
	// rather than set aside unrecorded.
	e2 := newEnv(t, &fakeWriter{err: &dataverse.StatusError{Status: 400}}, false)
	e2.pub.err = bus.ErrNotStored
	err = e2.svc.HandleDecision(t.Context(), msgOf(t, decision("d1", contactID, eventsv1.Flag_FLAG_NOT_AT_COMPANY), 1))
	if err == nil || bus.IsPermanent(err) {
		t.Fatalf("err = %v, want a transient error", err)
	}
}

func TestGarbageIsPermanent(t *testing.T) {
	e := newEnv(t, nil, false)
	err := e.svc.HandleDecision(t.Context(), &fakeMsg{data: []byte("this is not protobuf"), delivered: 1})
	if err == nil || !bus.IsPermanent(err) {
		t.Fatalf("err = %v, want permanent", err)
	}
	if len(e.pub.all()) != 0 || e.standin.Patches() != 0 {
		t.Error("garbage led to a write or an audit record")
	}
}

func TestParseConfig(t *testing.T) {
	getenv := func(env map[string]string) func(string) string { return func(k string) string { return env[k] } }
	var out strings.Builder
	cfg, err := ParseConfig(nil, getenv(nil), &out)
	if err != nil || !cfg.DryRun() {
		t.Fatalf("defaults: %+v %v", cfg, err)
	}
	_, err = ParseConfig(nil, getenv(map[string]string{"NAC_DATAVERSE_URL": "https://org.crm.dynamics.com"}), &out)
	for _, want := range []string{"NAC_DATAVERSE_TOKEN_URL", "NAC_DATAVERSE_CLIENT_ID", "NAC_DATAVERSE_CLIENT_SECRET"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
	cfg, err = ParseConfig(nil, getenv(map[string]string{
		"NAC_DATAVERSE_URL": "https://org.crm.dynamics.com", "NAC_DATAVERSE_TOKEN_URL": "https://login/token",
		"NAC_DATAVERSE_CLIENT_ID": "id", "NAC_DATAVERSE_CLIENT_SECRET": "s",
	}), &out)
	if err != nil || cfg.DryRun() || cfg.ClientSecret != "s" {
		t.Errorf("full config: %+v %v", cfg, err)
	}
}
