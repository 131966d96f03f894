package ingest

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/deadletters"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

const dlContact = "3a7e9c10-5b2d-4f8e-9a61-7c4d2e8b1f03"

// deadLetterBus is embedded JetStream with a dead letter store on it.
type deadLetterBus struct {
	js    jetstream.JetStream
	store *deadletters.Store
}

func newDeadLetterBus(t *testing.T) *deadLetterBus {
	t.Helper()
	js, _ := testkit.JetStream(t)
	store, err := deadletters.New(context.Background(), js, 5*time.Second, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return &deadLetterBus{js: js, store: store}
}

// setAside stores m on subject and sets it aside as consumer's settler
// does; it returns the dead letter's sequence.
func (b *deadLetterBus) setAside(t *testing.T, consumer, subject string, m proto.Message) uint64 {
	t.Helper()
	ctx := context.Background()
	data, _ := proto.Marshal(m)
	if m == nil {
		data = []byte{0xff, 0xff}
	}
	ack, err := b.js.Publish(ctx, subject, data)
	if err != nil {
		t.Fatal(err)
	}
	msg := &testkit.Msg{Subj: subject, Payload: data, Stream: ack.Stream, Seq: ack.Sequence, Delivered: 1, Stored: time.Now()}
	meta, _ := msg.Metadata()
	if err := bus.DeadLetter(ctx, bus.NewPublisher(b.js, 5*time.Second), consumer, msg, meta, "Dataverse answered 400"); err != nil {
		t.Fatal(err)
	}
	s, _ := b.js.Stream(ctx, bus.StreamDeadLetter)
	raw, err := s.GetLastMsgForSubject(ctx, bus.DeadLetterSubject(consumer))
	if err != nil {
		t.Fatal(err)
	}
	return raw.Sequence
}

// with serves the admin API with the store.
func (b *deadLetterBus) with(f *fixture) {
	f.svc.admin = fakeAdmin{}
	f.svc.deadLetters = b.store
	f.h = f.svc.Routes()
}

func decision(id string) *eventsv1.Decision {
	return &eventsv1.Decision{DecisionId: id, OrganizationId: contactOrg, ContactId: dlContact, Value: eventsv1.Flag_FLAG_NOT_AT_COMPANY, Reason: "left_company"}
}

func TestOpenAPIConformanceDeadLetters(t *testing.T) {
	t.Parallel()
	_, router := loadSpec(t)
	b := newDeadLetterBus(t)
	writer := b.setAside(t, bus.ConsumerWriter, bus.DecisionSubject(contactOrg, dlContact), decision("d-1"))
	broken := b.setAside(t, bus.ConsumerValidatorCRM, bus.CRMSubject(contactOrg, "contact", dlContact), nil)
	// An older decision of another contact, then a newer one for it.
	other := "5f0c7f10-0000-4000-8000-00000000000c"
	stale := b.setAside(t, bus.ConsumerWriter, bus.DecisionSubject(contactOrg, other), decision("d-old"))
	if _, err := b.js.Publish(context.Background(), bus.DecisionSubject(contactOrg, other), []byte{}); err != nil {
		t.Fatal(err)
	}
	profile := b.setAside(t, bus.ConsumerValidatorProfile, bus.ProfileMemberSubject("m-1"), &eventsv1.ProfileChange{EventId: "p-1", MemberId: "m-1"})
	_ = b.setAside(t, bus.ConsumerValidatorCRM, bus.CRMSubject(contactOrg, "account", dlContact), &eventsv1.CrmChange{EventId: "e-1"})

	tokens := func(c *Config) { c.AdminTokens = []string{testAdminToken} }
	on := func(f *fixture) { b.with(f) }
	ctJSON := "application/json"
	get, post, del := http.MethodGet, http.MethodPost, http.MethodDelete
	seq := func(n uint64) string { return "/admin/deadletters/" + strconv.FormatUint(n, 10) }
	noQuery := openapi3filter.Options{ExcludeRequestQueryParams: true}
	noBody := openapi3filter.Options{ExcludeRequestBody: true}
	actor := map[string]string{"Authorization": "Bearer " + testAdminToken, HeaderActor: "ops-oncall"}

	down := deadLetterBusDown(t)
	for _, c := range []specCase{
		{name: "list", cfg: tokens, prepare: on, method: get, target: "/admin/deadletters", header: adminAuth(), status: http.StatusOK,
			check: func(t *testing.T, rec *httptest.ResponseRecorder) {
				wantSequences(t, rec, writer, broken, stale, profile, profile+1)
			}},
		{name: "list filtered, paged", cfg: tokens, prepare: on, method: get, target: "/admin/deadletters?consumer=writer&org=" + contactOrg + "&limit=1",
			header: adminAuth(), status: http.StatusOK, check: func(t *testing.T, rec *httptest.ResponseRecorder) { wantSequences(t, rec, writer) }},
		{name: "list of an organization", cfg: tokens, prepare: on, method: get, target: "/admin/orgs/" + contactOrg + "/deadletters?after=" + strconv.FormatUint(writer, 10),
			header: adminAuth(), status: http.StatusOK, check: func(t *testing.T, rec *httptest.ResponseRecorder) { wantSequences(t, rec, broken, stale, profile+1) }},
		{name: "list bad org", cfg: tokens, prepare: on, method: get, target: "/admin/deadletters?org=contoso", requestOpts: noQuery,
			header: adminAuth(), status: http.StatusBadRequest},
		{name: "list limit 0", cfg: tokens, prepare: on, method: get, target: "/admin/deadletters?limit=0", requestOpts: noQuery,
			header: adminAuth(), status: http.StatusBadRequest},
		{name: "list unauthorized", cfg: tokens, prepare: on, method: get, target: "/admin/deadletters", status: http.StatusUnauthorized},
		{name: "list not here", cfg: tokens, prepare: func(f *fixture) { f.svc.admin = fakeAdmin{}; f.h = f.svc.Routes() },
			method: get, target: "/admin/deadletters", header: adminAuth(), status: http.StatusNotFound},
		{name: "list JetStream down", cfg: tokens, prepare: down.with, method: get, target: "/admin/deadletters", header: adminAuth(),
			status: http.StatusServiceUnavailable},
		{name: "show", cfg: tokens, prepare: on, method: get, target: seq(writer), header: adminAuth(), status: http.StatusOK},
		{name: "show undecodable", cfg: tokens, prepare: on, method: get, target: seq(broken), header: adminAuth(), status: http.StatusOK},
		{name: "show missing", cfg: tokens, prepare: on, method: get, target: seq(999), header: adminAuth(), status: http.StatusNotFound},
		{name: "redrive superseded", cfg: tokens, prepare: on, method: post, target: seq(stale) + "/redrive", header: actor, status: http.StatusConflict},
		{name: "redrive", cfg: tokens, prepare: on, method: post, target: seq(writer) + "/redrive", header: actor, status: http.StatusOK},
		{name: "redrive again", cfg: tokens, prepare: on, method: post, target: seq(writer) + "/redrive", header: actor, status: http.StatusNotFound},
		{name: "discard", cfg: tokens, prepare: on, method: del, target: seq(stale), header: actor, status: http.StatusOK},
		{name: "bulk redrive", cfg: tokens, prepare: on, method: post, target: "/admin/deadletters/redrive", contentType: ctJSON,
			body: []byte(`{"consumer":"validator-profile"}`), header: actor, status: http.StatusOK},
		{name: "bulk discard", cfg: tokens, prepare: on, method: post, target: "/admin/deadletters/discard", contentType: ctJSON,
			body: []byte(`{"all":true,"limit":1}`), header: adminAuth(), status: http.StatusOK},
		{name: "bulk without a selection", cfg: tokens, prepare: on, method: post, target: "/admin/deadletters/discard", contentType: ctJSON,
			body: []byte(`{}`), header: adminAuth(), status: http.StatusBadRequest},
		{name: "bulk unknown field", cfg: tokens, prepare: on, method: post, target: "/admin/deadletters/discard", contentType: ctJSON,
			body: []byte(`{"everything":true}`), requestOpts: noBody, header: adminAuth(), status: http.StatusBadRequest},
		{name: "bulk text/plain", cfg: tokens, prepare: on, method: post, target: "/admin/deadletters/redrive", contentType: "text/plain",
			body: []byte(`{"all":true}`), requestOpts: noBody, header: adminAuth(), status: http.StatusUnsupportedMediaType},
		{name: "bulk JetStream down", cfg: tokens, prepare: down.with, method: post, target: "/admin/deadletters/redrive", contentType: ctJSON,
			body: []byte(`{"all":true}`), header: adminAuth(), status: http.StatusServiceUnavailable},
	} {
		t.Run(c.name, func(t *testing.T) { checkAgainstSpec(t, router, c) })
	}
}

// deadLetterBusDown is a dead letter store whose server has stopped.
func deadLetterBusDown(t *testing.T) *deadLetterBus {
	t.Helper()
	ns := testkit.NATSServer(t)
	nc, err := nats.Connect(ns.ClientURL(), nats.NoReconnect())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	if err := bus.Declare(context.Background(), js, bus.DefaultOptions()); err != nil {
		t.Fatal(err)
	}
	store, err := deadletters.New(context.Background(), js, time.Second, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ns.Shutdown()
	return &deadLetterBus{js: js, store: store}
}

func wantSequences(t *testing.T, rec *httptest.ResponseRecorder, want ...uint64) {
	t.Helper()
	var page deadletters.Page
	if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, l := range page.DeadLetters {
		got = append(got, l.Sequence)
	}
	if len(got) != len(want) {
		t.Fatalf("sequences %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("sequences %v, want %v", got, want)
		}
	}
}

// A redrive through the API stores the decision again where it came from
// and records who did it.
func TestDeadLetterRedriveRecordsWho(t *testing.T) {
	t.Parallel()
	b := newDeadLetterBus(t)
	f := adminFixture(t)
	b.with(f)
	subject := bus.DecisionSubject(contactOrg, dlContact)
	seq := b.setAside(t, bus.ConsumerWriter, subject, decision("d-1"))

	rec := f.do(t, http.MethodPost, "/admin/deadletters/"+strconv.FormatUint(seq, 10)+"/redrive", "", nil,
		map[string]string{"Authorization": "Bearer " + testAdminToken, HeaderActor: "ops-oncall"})
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var out deadletters.Outcome
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	decisions, _ := b.js.Stream(ctx, bus.StreamDecisions)
	last, err := decisions.GetLastMsgForSubject(ctx, subject)
	if err != nil || out.Outcome != deadletters.OutcomeRedriven || last.Sequence != out.RedrivenSequence {
		t.Fatalf("outcome %+v, last decision %v (%v)", out, last, err)
	}
	audit, _ := b.js.Stream(ctx, bus.StreamAudit)
	raw, err := audit.GetLastMsgForSubject(ctx, bus.AuditSubject("deadletter", contactOrg))
	if err != nil {
		t.Fatal(err)
	}
	var action eventsv1.DeadLetterAction
	if err := proto.Unmarshal(raw.Data, &action); err != nil {
		t.Fatal(err)
	}
	if action.GetActor() != "ops-oncall" || action.GetTokenFingerprint() != tokenFingerprint(testAdminToken) ||
		action.GetAction() != deadletters.ActionRedrive || action.GetSequence() != seq || action.GetRedrivenSequence() != out.RedrivenSequence {
		t.Errorf("audit record %v", &action)
	}
	if strings.Contains(action.GetTokenFingerprint(), testAdminToken[:8]) || len(action.GetTokenFingerprint()) != 8 {
		t.Errorf("fingerprint %q", action.GetTokenFingerprint())
	}
}

// Refused requests change nothing.
func TestDeadLetterBadInput(t *testing.T) {
	t.Parallel()
	b := newDeadLetterBus(t)
	f := adminFixture(t)
	b.with(f)
	seq := b.setAside(t, bus.ConsumerWriter, bus.DecisionSubject(contactOrg, dlContact), decision("d-1"))
	target := "/admin/deadletters/" + strconv.FormatUint(seq, 10)
	long := map[string]string{"Authorization": "Bearer " + testAdminToken, HeaderActor: strings.Repeat("x", 101)}
	ctrl := map[string]string{"Authorization": "Bearer " + testAdminToken, HeaderActor: "ops\x7f"}
	for _, c := range []struct {
		name, method, target, body, field string
		header                            map[string]string
	}{
		{"sequence not a number", http.MethodGet, "/admin/deadletters/abc", "", "seq", adminAuth()},
		{"sequence 0", http.MethodPost, "/admin/deadletters/0/redrive", "", "seq", adminAuth()},
		{"actor too long", http.MethodPost, target + "/redrive", "", HeaderActor, long},
		{"actor with a control character", http.MethodDelete, target, "", HeaderActor, ctrl},
		{"consumer not a name", http.MethodGet, "/admin/deadletters?consumer=a.b", "", "consumer", adminAuth()},
		{"after not a number", http.MethodGet, "/admin/deadletters?after=-1", "", "after", adminAuth()},
		{"bulk without a selection", http.MethodPost, "/admin/deadletters/redrive", `{"limit":5}`, "/all", adminAuth()},
		{"bulk org not a GUID", http.MethodPost, "/admin/deadletters/redrive", `{"organizationId":"contoso"}`, "/organizationId", adminAuth()},
		{"bulk upTo before after", http.MethodPost, "/admin/deadletters/discard", `{"all":true,"after":5,"upTo":5}`, "/upTo", adminAuth()},
		{"bulk limit too high", http.MethodPost, "/admin/deadletters/discard", `{"all":true,"limit":501}`, "/limit", adminAuth()},
		{"bulk trailing data", http.MethodPost, "/admin/deadletters/discard", `{"all":true} {}`, "/", adminAuth()},
	} {
		ct := ""
		if c.body != "" {
			ct = "application/json"
		}
		rec := f.do(t, c.method, c.target, ct, []byte(c.body), c.header)
		if rec.Code != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400: %s", c.name, rec.Code, rec.Body)
			continue
		}
		var p struct {
			Errors []struct{ Field string } `json:"errors"`
		}
		_ = json.Unmarshal(rec.Body.Bytes(), &p)
		if len(p.Errors) == 0 || p.Errors[0].Field != c.field {
			t.Errorf("%s: errors %+v, want field %s", c.name, p.Errors, c.field)
		}
	}
	if _, err := b.store.Get(context.Background(), seq); err != nil {
		t.Errorf("the dead letter is gone after refused requests: %v", err)
	}
}
