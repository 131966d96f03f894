package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/ingest/profilefeed"
	"github.com/notatcompany/notatcompany/services/shared/problem"
)

const (
	testKey     = "dataverse-key-0123456789"
	rotatedKey  = "dataverse-key-rotated-000"
	testSecret  = "profile-secret-0123456789"
	appUserID   = "99999999-8888-4777-a666-555555555555"
	contactOrg  = "00aa00aa-bb11-cc22-dd33-44ee44ee44ee"
	contactRow  = "6d81597f-0f9f-e711-8122-000d3aa2331c"
	contactUser = "11bb11bb-cc22-dd33-ee44-55ff55ff55ff"
	flagColumn  = "nac_orgchangestatus"
)

var fixedNow = time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)

type published struct {
	subject, msgID string
	data           []byte
}

// fakePublisher stores in memory, or fails with err while err is set.
type fakePublisher struct {
	mu       sync.Mutex
	err      error
	attempts int
	msgs     []published
}

func (p *fakePublisher) Publish(_ context.Context, subject, msgID string, data []byte, _ nats.Header) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.attempts++
	if p.err != nil {
		return p.err
	}
	p.msgs = append(p.msgs, published{subject, msgID, append([]byte(nil), data...)})
	return nil
}

func (p *fakePublisher) setErr(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.err = err
}

func (p *fakePublisher) stored() []published {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]published(nil), p.msgs...)
}

func testConfig() Config {
	return Config{
		HTTPAddr:              "127.0.0.1:0",
		DataverseKeys:         []string{testKey, rotatedKey},
		ProfileSecrets:        []string{testSecret},
		PublishTimeout:        time.Second,
		DataverseMaxBodyBytes: 64 << 10, ProfileMaxBodyBytes: 64 << 10, MaxInflightBytes: 8 << 20,
		Tables:     []string{"contact", "account"},
		WriteTag:   "notatcompany",
		AppUserID:  appUserID,
		FlagColumn: flagColumn,
	}
}

type fixture struct {
	svc *Service
	pub *fakePublisher
	reg *prometheus.Registry
	h   http.Handler
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureWith(t, testConfig())
}

// newFixtureWith serves cfg, publishing into a fakePublisher.
func newFixtureWith(t *testing.T, cfg Config) *fixture {
	t.Helper()
	pub := &fakePublisher{}
	reg := prometheus.NewPedanticRegistry()
	svc := New(cfg, pub, nil, nil, slog.New(slog.DiscardHandler), reg)
	svc.now = func() time.Time { return fixedNow }
	return &fixture{svc: svc, pub: pub, reg: reg, h: svc.Routes()}
}

func (f *fixture) do(t *testing.T, method, target, contentType string, body []byte, header map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	return f.send(httptest.NewRequest(method, target, bytes.NewReader(body)), contentType, header)
}

// send serves req with the content type and headers set.
func (f *fixture) send(req *http.Request, contentType string, header map[string]string) *httptest.ResponseRecorder {
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

func contactFixture(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("remotecontext/testdata/msdocs-update-contact.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withChanges decodes a context body, applies edit and encodes it again.
func withChanges(t *testing.T, body []byte, edit func(doc map[string]any)) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	edit(doc)
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func decodeProblem(t *testing.T, rec *httptest.ResponseRecorder, status int, kind string) problem.Details {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != problem.ContentType {
		t.Errorf("Content-Type %q, want %q", ct, problem.ContentType)
	}
	var p problem.Details
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("problem body %q: %v", rec.Body, err)
	}
	if p.Status != status || !strings.HasSuffix(p.Type, "/"+kind) {
		t.Errorf("problem status %d type %q, want %d .../%s", p.Status, p.Type, status, kind)
	}
	return p
}

func decodeAccepted(t *testing.T, rec *httptest.ResponseRecorder, outcome string) Accepted {
	t.Helper()
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status %d, want 202; body %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var a Accepted
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
		t.Fatal(err)
	}
	if a.Outcome != outcome {
		t.Errorf("outcome %q, want %q", a.Outcome, outcome)
	}
	return a
}

func dataverseURL(key string) string { return "/webhooks/dataverse?code=" + key }

func TestDataverseJetStreamDownAnswers503ThenAccepts(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	body := contactFixture(t)

	f.pub.setErr(errors.New("nats: no responders available for request"))
	rec := f.do(t, http.MethodPost, dataverseURL(testKey), "application/json", body, nil)
	p := decodeProblem(t, rec, http.StatusServiceUnavailable, "unavailable")
	if ra := rec.Header().Get("Retry-After"); ra != "5" {
		t.Errorf("Retry-After %q, want 5", ra)
	}
	if p.Instance != "/webhooks/dataverse" {
		t.Errorf("instance %q", p.Instance)
	}
	if f.pub.attempts != 1 || len(f.pub.stored()) != 0 {
		t.Fatalf("attempts %d, stored %d; want one failed attempt", f.pub.attempts, len(f.pub.stored()))
	}

	// JetStream is back; Dataverse retries the same body.
	f.pub.setErr(nil)
	rec = f.do(t, http.MethodPost, dataverseURL(testKey), "application/json; charset=utf-8", body, nil)
	a := decodeAccepted(t, rec, "accepted")
	wantID := "dv." + contactOrg + ".4af10637-4ea2-e711-8122-000d3aa2331c.update.contact." + contactRow
	if a.EventID != wantID {
		t.Errorf("eventId %q, want %q", a.EventID, wantID)
	}
	msgs := f.pub.stored()
	if len(msgs) != 1 {
		t.Fatalf("%d messages stored, want 1", len(msgs))
	}
	m := msgs[0]
	if want := "nac.crm." + contactOrg + ".contact." + contactRow; m.subject != want {
		t.Errorf("subject %q, want %q", m.subject, want)
	}
	if m.msgID != wantID {
		t.Errorf("msgID %q, want %q", m.msgID, wantID)
	}
	var ch eventsv1.CrmChange
	if err := proto.Unmarshal(m.data, &ch); err != nil {
		t.Fatal(err)
	}
	if ch.EventId != wantID || ch.RowId != contactRow || ch.Columns["firstname"].GetString_() != "James" {
		t.Errorf("published change: event %q row %q firstname %v", ch.EventId, ch.RowId, ch.Columns["firstname"])
	}
	if !ch.ReceivedAt.AsTime().Equal(fixedNow) {
		t.Errorf("ReceivedAt %v, want %v", ch.ReceivedAt.AsTime(), fixedNow)
	}
	if got := testutil.ToFloat64(f.svc.metrics.requests.WithLabelValues("dataverse", "contact", "Update", "unavailable")); got != 1 {
		t.Errorf("unavailable requests %v, want 1", got)
	}
	if got := testutil.ToFloat64(f.svc.metrics.requests.WithLabelValues("dataverse", "contact", "Update", "accepted")); got != 1 {
		t.Errorf("accepted requests %v, want 1", got)
	}
}

func profileBody(t *testing.T, id string) []byte {
	t.Helper()
	return erasureFrom(t, id, "demo feed")
}

// erasureFrom is a member.erased event of source.
func erasureFrom(t *testing.T, id, source string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"id": id, "type": "member.erased", "source": source, "observedAt": "2026-03-04T11:00:00Z",
		"data": map[string]any{"memberId": "m.ada"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// profileChanged is a profile.changed event of source with every field.
func profileChanged(t *testing.T, id, source string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"id": id, "type": "profile.changed", "source": source, "observedAt": "2026-03-04T11:00:00.250+01:00",
		"data": map[string]any{
			"memberId": "m.ada", "profileUrl": "https://profiles.example/ada", "firstName": "Ada", "lastName": "Lovelace",
			"country": "GB", "emailSha256": []string{eventsv1.HashEmail("ada@contoso.com")},
			"positions": []any{
				map[string]any{"companyId": "c-1", "companyName": "Contoso", "title": "Engineer",
					"start": map[string]any{"year": 2018, "month": 3}, "end": map[string]any{"year": 2024, "month": 6}},
				map[string]any{"companyName": "Fabrikam", "current": true, "start": map[string]any{"year": 2024}},
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func signed(body []byte) map[string]string {
	return map[string]string{"X-LI-Signature": profilefeed.Sign(testSecret, body)}
}

func TestProfileJetStreamDownAnswers503ThenAccepts(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	body := profileBody(t, "evt-1")
	f.pub.setErr(errors.New("timeout"))
	rec := f.do(t, http.MethodPost, "/webhooks/profile", "application/json", body, signed(body))
	decodeProblem(t, rec, http.StatusServiceUnavailable, "unavailable")
	if rec.Header().Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
	// A batch fails as a whole when one publish fails.
	batch := []byte("[" + string(profileBody(t, "evt-2")) + "," + string(profileBody(t, "evt-3")) + "]")
	rec = f.do(t, http.MethodPost, "/webhooks/profile", "application/json", batch, signed(batch))
	decodeProblem(t, rec, http.StatusServiceUnavailable, "unavailable")
	if len(f.pub.stored()) != 0 {
		t.Fatal("something was stored while JetStream was down")
	}

	f.pub.setErr(nil)
	rec = f.do(t, http.MethodPost, "/webhooks/profile", "application/json", body, signed(body))
	a := decodeAccepted(t, rec, "accepted")
	if a.EventID != "evt-1" {
		t.Errorf("eventId %q", a.EventID)
	}
	msgs := f.pub.stored()
	if len(msgs) != 1 {
		t.Fatalf("%d stored, want 1", len(msgs))
	}
	// Outside ids are encoded so that they cannot change the subject's shape.
	if msgs[0].subject != "nac.profile.erasure.b64_bS5hZGE" {
		t.Errorf("subject %q", msgs[0].subject)
	}
	if msgs[0].msgID != "profile.b64_ZGVtbyBmZWVk.evt-1" {
		t.Errorf("msgID %q", msgs[0].msgID)
	}
	var e eventsv1.MemberErased
	if err := proto.Unmarshal(msgs[0].data, &e); err != nil || e.MemberId != "m.ada" || e.EventId != "evt-1" {
		t.Errorf("published %v (err %v)", &e, err)
	}
}

func TestDataverseWebhook(t *testing.T) {
	t.Parallel()
	contact := contactFixture(t)
	loopByUser := withChanges(t, contact, func(doc map[string]any) {
		doc["InitiatingUserId"] = strings.ToUpper(appUserID)
		doc["OperationId"] = "0aaaaaaa-0000-4000-8000-000000000001"
	})
	sizeExceeded := withChanges(t, contact, func(doc map[string]any) {
		delete(doc, "InputParameters")
		delete(doc, "PostEntityImages")
		delete(doc, "ParentContext")
		doc["OperationId"] = "0aaaaaaa-0000-4000-8000-000000000002"
	})
	invalid := withChanges(t, contact, func(doc map[string]any) {
		delete(doc, "OrganizationId")
		delete(doc, "MessageName")
	})

	t.Run("rotated key accepted", func(t *testing.T) {
		f := newFixture(t)
		decodeAccepted(t, f.do(t, http.MethodPost, dataverseURL(rotatedKey), "application/json", contact, nil), "accepted")
		if len(f.pub.stored()) != 1 {
			t.Errorf("%d stored", len(f.pub.stored()))
		}
	})
	t.Run("key prefix refused", func(t *testing.T) {
		f := newFixture(t)
		decodeProblem(t, f.do(t, http.MethodPost, dataverseURL(testKey[:len(testKey)-1]), "application/json", contact, nil), http.StatusUnauthorized, "unauthorized")
		if f.pub.attempts != 0 {
			t.Error("published without a valid key")
		}
	})
	t.Run("changes made by the writer's application user are a loop", func(t *testing.T) {
		f := newFixture(t)
		decodeAccepted(t, f.do(t, http.MethodPost, dataverseURL(testKey), "application/json", loopByUser, nil), "loop")
		if f.pub.attempts != 0 {
			t.Error("published a loop")
		}
	})
	t.Run("size exceeded asks for a read back", func(t *testing.T) {
		f := newFixture(t)
		rec := f.do(t, http.MethodPost, dataverseURL(testKey), "text/json", sizeExceeded,
			map[string]string{"x-ms-dynamics-msg-size-exceeded": "true"})
		decodeAccepted(t, rec, "accepted")
		msgs := f.pub.stored()
		if len(msgs) != 1 {
			t.Fatalf("%d stored", len(msgs))
		}
		var ch eventsv1.CrmChange
		if err := proto.Unmarshal(msgs[0].data, &ch); err != nil {
			t.Fatal(err)
		}
		if !ch.ReadBackRequired || len(ch.Columns) != 0 || ch.RowId != contactRow {
			t.Errorf("read back %v, columns %d, row %q", ch.ReadBackRequired, len(ch.Columns), ch.RowId)
		}
	})
	t.Run("every field problem listed", func(t *testing.T) {
		f := newFixture(t)
		p := decodeProblem(t, f.do(t, http.MethodPost, dataverseURL(testKey), "application/json", invalid, nil), http.StatusBadRequest, "invalid-body")
		fields := map[string]bool{}
		for _, e := range p.Errors {
			fields[e.Field] = true
			if e.Reason == "" {
				t.Errorf("no reason for %s", e.Field)
			}
		}
		if len(p.Errors) != 2 || !fields["/OrganizationId"] || !fields["/MessageName"] {
			t.Errorf("errors %+v, want /MessageName and /OrganizationId", p.Errors)
		}
	})
	t.Run("GET not allowed", func(t *testing.T) {
		f := newFixture(t)
		decodeProblem(t, f.do(t, http.MethodGet, dataverseURL(testKey), "", nil, nil), http.StatusMethodNotAllowed, "method-not-allowed")
	})
	t.Run("unknown path", func(t *testing.T) {
		f := newFixture(t)
		decodeProblem(t, f.do(t, http.MethodPost, "/webhooks/other", "application/json", nil, nil), http.StatusNotFound, "not-found")
	})
	t.Run("unparsable Content-Type", func(t *testing.T) {
		f := newFixture(t)
		decodeProblem(t, f.do(t, http.MethodPost, dataverseURL(testKey), "application/", contact, nil), http.StatusUnsupportedMediaType, "unsupported-media-type")
	})
	t.Run("too large", func(t *testing.T) {
		f := newFixture(t)
		big := withChanges(t, contact, func(doc map[string]any) { doc["Padding"] = strings.Repeat("x", 64<<10) })
		decodeProblem(t, f.do(t, http.MethodPost, dataverseURL(testKey), "application/json", big, nil), http.StatusRequestEntityTooLarge, "body-too-large")
		if f.pub.attempts != 0 {
			t.Error("published a body over the limit")
		}
	})
}

func TestProfileWebhook(t *testing.T) {
	t.Parallel()
	t.Run("challenge", func(t *testing.T) {
		f := newFixture(t)
		rec := f.do(t, http.MethodGet, "/webhooks/profile?challengeCode=8f3c2a1e-4b5d-4e6f-9a0b-1c2d3e4f5a6b", "", nil, nil)
		if rec.Code != http.StatusOK {
			t.Fatalf("status %d", rec.Code)
		}
		var got map[string]string
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if got["challengeCode"] != "8f3c2a1e-4b5d-4e6f-9a0b-1c2d3e4f5a6b" || got["challengeResponse"] != profilefeed.Sign(testSecret, []byte("8f3c2a1e-4b5d-4e6f-9a0b-1c2d3e4f5a6b")) {
			t.Errorf("answer %v", got)
		}
	})
	t.Run("challenge without code", func(t *testing.T) {
		f := newFixture(t)
		decodeProblem(t, f.do(t, http.MethodGet, "/webhooks/profile", "", nil, nil), http.StatusBadRequest, "invalid-query")
	})
	t.Run("single invalid event", func(t *testing.T) {
		f := newFixture(t)
		body := []byte(`{"id":"evt-9","type":"member.erased","source":"s","observedAt":"2026-03-04T11:00:00Z","data":{}}`)
		p := decodeProblem(t, f.do(t, http.MethodPost, "/webhooks/profile", "application/json", body, signed(body)), http.StatusBadRequest, "invalid-event")
		if len(p.Errors) != 1 || p.Errors[0].Field != "/data/memberId" {
			t.Errorf("errors %+v, want /data/memberId", p.Errors)
		}
	})
	t.Run("batch with nothing valid", func(t *testing.T) {
		f := newFixture(t)
		body := []byte(`[{"id":"a b"},{"id":"evt-2","type":"nope"}]`)
		rec := f.do(t, http.MethodPost, "/webhooks/profile", "application/json", body, signed(body))
		if rec.Code != http.StatusBadRequest {
			t.Fatalf("status %d, want 400; %s", rec.Code, rec.Body)
		}
		var res BatchResult
		if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil {
			t.Fatal(err)
		}
		if res.Accepted != 0 || res.Refused != 2 || len(res.Results) != 2 {
			t.Fatalf("result %+v", res)
		}
		if res.Results[0].ID != "a b" || res.Results[1].ID != "evt-2" || res.Results[1].Index != 1 || res.Results[1].Status != "refused" {
			t.Errorf("results %+v", res.Results)
		}
	})
	t.Run("signature over another body", func(t *testing.T) {
		f := newFixture(t)
		body := profileBody(t, "evt-1")
		decodeProblem(t, f.do(t, http.MethodPost, "/webhooks/profile", "application/json", body, signed(append(body, ' '))), http.StatusUnauthorized, "bad-signature")
		if f.pub.attempts != 0 {
			t.Error("published an unsigned event")
		}
	})
	t.Run("signed junk", func(t *testing.T) {
		f := newFixture(t)
		body := []byte(`[]`)
		p := decodeProblem(t, f.do(t, http.MethodPost, "/webhooks/profile", "application/json", body, signed(body)), http.StatusBadRequest, "invalid-body")
		if len(p.Errors) != 1 || p.Errors[0].Field != "/" {
			t.Errorf("errors %+v", p.Errors)
		}
	})
}

func TestOperationLabelIsBounded(t *testing.T) {
	t.Parallel()
	m := newMetrics(prometheus.NewRegistry())
	m.request("dataverse", "contact", "new_CustomAction", "accepted")
	m.request("dataverse", "contact", "Update", "accepted")
	m.request("profile", "", "", "invalid")
	if got := testutil.ToFloat64(m.requests.WithLabelValues("dataverse", "contact", "other", "accepted")); got != 1 {
		t.Errorf("other = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("dataverse", "contact", "Update", "accepted")); got != 1 {
		t.Errorf("Update = %v, want 1", got)
	}
	if n := testutil.CollectAndCount(m.requests); n != 3 {
		t.Errorf("%d series, want 3", n)
	}
}

func TestMetricsLint(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// Give every metric a series: a lint of an empty vector proves nothing.
	contact := contactFixture(t)
	decodeAccepted(t, f.do(t, http.MethodPost, dataverseURL(testKey), "application/json", contact, nil), "accepted")
	body := profileBody(t, "evt-1")
	decodeAccepted(t, f.do(t, http.MethodPost, "/webhooks/profile", "application/json", body, signed(body)), "accepted")
	f.do(t, http.MethodPost, dataverseURL("wrong"), "application/json", contact, nil)

	for name, c := range map[string]prometheus.Collector{
		"requests": f.svc.metrics.requests, "publish": f.svc.metrics.publish, "bodyBytes": f.svc.metrics.bodyBytes,
	} {
		if n := testutil.CollectAndCount(c); n == 0 {
			t.Errorf("%s has no series to lint", name)
		}
		problems, err := testutil.CollectAndLint(c)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		for _, p := range problems {
			t.Errorf("%s: lint: %s: %s", name, p.Metric, p.Text)
		}
	}
	problems, err := testutil.GatherAndLint(f.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("registry lint: %s: %s", p.Metric, p.Text)
	}
	if n, err := testutil.GatherAndCount(f.reg, "nac_ingest_requests_total", "nac_ingest_publish_duration_seconds", "nac_ingest_body_bytes"); err != nil || n != 7 {
		// requests: dataverse accepted, profile accepted, dataverse unauthorized;
		// publish: dataverse, profile; body bytes: dataverse, profile.
		t.Errorf("gathered %d series (err %v), want 7", n, err)
	}
}

// decodeChange decodes a published CrmChange.
func decodeChange(t *testing.T, m published) *eventsv1.CrmChange {
	t.Helper()
	var ch eventsv1.CrmChange
	if err := proto.Unmarshal(m.data, &ch); err != nil {
		t.Fatalf("published %s: %v", m.subject, err)
	}
	return &ch
}

// requests is the nac_ingest_requests_total series with these labels.
func (f *fixture) requests(endpoint, kind, operation, outcome string) float64 {
	return testutil.ToFloat64(f.svc.metrics.requests.WithLabelValues(endpoint, kind, operation, outcome))
}

// withOrg is body with another OrganizationId.
func withOrg(t *testing.T, body []byte, org string) []byte {
	t.Helper()
	return withChanges(t, body, func(doc map[string]any) { doc["OrganizationId"] = org })
}

// optionSet is an OptionSetValue as Dataverse serializes it.
func optionSet(n int) map[string]any {
	return map[string]any{"__type": "OptionSetValue:http://schemas.microsoft.com/xrm/2011/Contracts", "Value": n}
}

// withTarget is the msdocs contact update turned into a change of table
// whose Target sets exactly the given key/value pairs.
func withTarget(t *testing.T, table string, kv ...any) []byte {
	t.Helper()
	var attrs []any
	for i := 0; i < len(kv); i += 2 {
		attrs = append(attrs, map[string]any{"key": kv[i], "value": kv[i+1]})
	}
	return withChanges(t, contactFixture(t), func(doc map[string]any) {
		doc["PrimaryEntityName"] = table
		target := doc["InputParameters"].([]any)[0].(map[string]any)["value"].(map[string]any)
		target["LogicalName"] = table
		target["Attributes"] = attrs
		delete(doc, "PostEntityImages")
	})
}

// The system columns an update by the writer carries beside the flag.
func systemAttrs() []any {
	return []any{
		"modifiedon", `/Date(1506384247000)/`,
		"modifiedby", map[string]any{
			"__type": "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts",
			"Id":     appUserID, "LogicalName": "systemuser", "Name": nil,
		},
		"contactid", contactRow,
	}
}

func TestLoopSafety(t *testing.T) {
	t.Parallel()
	flagOnly := func(value any) []byte {
		return withTarget(t, "contact", append([]any{flagColumn, value}, systemAttrs()...)...)
	}
	for _, tc := range []struct {
		name    string
		cfg     func(*Config)
		body    []byte
		outcome string
		check   func(t *testing.T, ch *eventsv1.CrmChange)
	}{
		// Our writes come back with their tag (or as the app user).
		{name: "our write coming back with its tag", outcome: "loop", body: withChanges(t, flagOnly(optionSet(1)), func(doc map[string]any) {
			doc["SharedVariables"] = []any{map[string]any{"key": "tag", "value": testConfig().WriteTag}}
		})},
		// It is dropped on its header: its images are never read, so one
		// that would be refused as a seller's change passes as ours.
		{name: "our write's echo, its images unread", outcome: "loop", body: withChanges(t, flagOnly(optionSet(1)), func(doc map[string]any) {
			doc["SharedVariables"] = []any{map[string]any{"key": "tag", "value": testConfig().WriteTag}}
			doc["PostEntityImages"] = []any{map[string]any{"key": "AsynchronousStepPrimaryName", "value": "not an entity"}}
		})},
		// A seller setting the flag by hand is heard, whatever the value.
		{name: "a seller's No Feedback", body: flagOnly(optionSet(0)), outcome: "accepted",
			check: func(t *testing.T, ch *eventsv1.CrmChange) {
				if got := ch.GetColumns()[flagColumn]; got == nil || got.GetChoice() != 0 || got.GetNull() {
					t.Errorf("published flag %v, want 0 (No Feedback)", got)
				}
			}},
		{name: "a seller's Not at Company", body: flagOnly(optionSet(1)), outcome: "accepted"},
		{name: "flag set to Ignore is the user's", body: flagOnly(optionSet(2)), outcome: "accepted",
			check: func(t *testing.T, ch *eventsv1.CrmChange) {
				if got := ch.GetColumns()[flagColumn].GetChoice(); got != 2 {
					t.Errorf("published flag %d, want 2 (Ignore)", got)
				}
			}},
		{name: "flag and another column", outcome: "accepted",
			body: withTarget(t, "contact", append([]any{flagColumn, optionSet(1), "firstname", "Ada"}, systemAttrs()...)...),
			check: func(t *testing.T, ch *eventsv1.CrmChange) {
				if got := ch.GetColumns()["firstname"].GetString_(); got != "Ada" {
					t.Errorf("published firstname %q", got)
				}
			}},
		{name: "system columns without the flag", body: withTarget(t, "contact", systemAttrs()...), outcome: "accepted"},
		{name: "app user configured in upper case", outcome: "loop",
			cfg:  func(c *Config) { c.AppUserID = strings.ToUpper(appUserID) },
			body: withChanges(t, contactFixture(t), func(doc map[string]any) { doc["InitiatingUserId"] = appUserID })},
		{name: "app user in upper case on both sides", outcome: "loop",
			cfg:  func(c *Config) { c.AppUserID = strings.ToUpper(appUserID) },
			body: withChanges(t, contactFixture(t), func(doc map[string]any) { doc["InitiatingUserId"] = strings.ToUpper(appUserID) })},
		{name: "a user other than the app user", outcome: "accepted",
			cfg: func(c *Config) { c.AppUserID = strings.ToUpper(appUserID) }, body: contactFixture(t)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			f := newFixtureWith(t, cfg)
			a := decodeAccepted(t, f.do(t, http.MethodPost, dataverseURL(testKey), "application/json", tc.body, nil), tc.outcome)
			msgs := f.pub.stored()
			if tc.outcome == "loop" {
				if len(msgs) != 0 || f.pub.attempts != 0 {
					t.Fatalf("a loop was published: %d attempts", f.pub.attempts)
				}
				if a.EventID != "" {
					t.Errorf("eventId %q for a loop", a.EventID)
				}
				if got := f.requests("dataverse", "contact", "Update", "loop"); got != 1 {
					t.Errorf("loop requests %v, want 1", got)
				}
				return
			}
			if len(msgs) != 1 {
				t.Fatalf("%d published, want 1", len(msgs))
			}
			ch := decodeChange(t, msgs[0])
			if a.EventID == "" || a.EventID != ch.GetEventId() {
				t.Errorf("eventId %q, published %q", a.EventID, ch.GetEventId())
			}
			if tc.check != nil {
				tc.check(t, ch)
			}
			if got := f.requests("dataverse", ch.GetTable(), "Update", "accepted"); got != 1 {
				t.Errorf("accepted requests %v, want 1", got)
			}
		})
	}
}

const (
	opportunityRow = "3c2b1a00-0000-4000-8000-0000000000aa"
	relatedContact = "5A4B3C2D-0000-4000-8000-0000000000BB" // as Dataverse may send it
	associateOp    = "0bbbbbbb-0000-4000-8000-000000000001"
)

func entityReference(table, id string) map[string]any {
	return map[string]any{
		"__type": "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts",
		"Id":     id, "KeyAttributes": []any{}, "LogicalName": table, "Name": nil, "RowVersion": nil,
	}
}

// associateBody is an Associate or Disassociate context: the step runs on
// "none", the Target is a reference, the related rows are references.
func associateBody(t *testing.T, message, relationship string, target map[string]any, related ...map[string]any) []byte {
	t.Helper()
	rel := make([]any, len(related))
	for i, r := range related {
		rel[i] = r
	}
	b, err := json.Marshal(map[string]any{
		"MessageName": message, "PrimaryEntityName": "none", "PrimaryEntityId": "00000000-0000-0000-0000-000000000000",
		"OrganizationId": contactOrg, "OperationId": associateOp, "CorrelationId": "aaaa0000-bb11-2222-33cc-444444dddddd",
		"InitiatingUserId": contactUser, "UserId": contactUser, "OperationCreatedOn": `/Date(1700000000000)/`,
		"Depth": 1, "Stage": 40, "Mode": 1,
		"InputParameters": []any{
			map[string]any{"key": "Target", "value": target},
			map[string]any{"key": "Relationship", "value": map[string]any{
				"__type":            "Relationship:http://schemas.microsoft.com/xrm/2011/Contracts",
				"PrimaryEntityRole": nil, "SchemaName": relationship,
			}},
			map[string]any{"key": "RelatedEntities", "value": rel},
		},
		"PreEntityImages": []any{}, "PostEntityImages": []any{}, "SharedVariables": []any{}, "ParentContext": nil,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAssociate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		message string
		op      eventsv1.Operation
	}{
		{"Associate", eventsv1.Operation_OPERATION_ASSOCIATE},
		{"Disassociate", eventsv1.Operation_OPERATION_DISASSOCIATE},
	} {
		t.Run(tc.message+" of a listed table's row", func(t *testing.T) {
			// opportunity is not listed (testConfig: contact, account); the
			// related contact makes the change matter.
			f := newFixture(t)
			body := associateBody(t, tc.message, "opportunitycontact_association",
				entityReference("opportunity", opportunityRow), entityReference("contact", relatedContact))
			a := decodeAccepted(t, f.do(t, http.MethodPost, dataverseURL(testKey), "application/json", body, nil), "accepted")
			msgs := f.pub.stored()
			if len(msgs) != 1 {
				t.Fatalf("%d published, want 1", len(msgs))
			}
			ch := decodeChange(t, msgs[0])
			if ch.GetTable() != "opportunity" || ch.GetRowId() != opportunityRow || ch.GetOperation() != tc.op {
				t.Errorf("published %s/%s %v, want opportunity/%s %v", ch.GetTable(), ch.GetRowId(), ch.GetOperation(), opportunityRow, tc.op)
			}
			if ch.GetRelationship() != "opportunitycontact_association" {
				t.Errorf("Relationship %q", ch.GetRelationship())
			}
			want := &eventsv1.EntityReference{Table: "contact", Id: strings.ToLower(relatedContact)}
			if len(ch.GetRelated()) != 1 || !proto.Equal(ch.GetRelated()[0], want) {
				t.Errorf("Related %v, want [%v]", ch.GetRelated(), want)
			}
			wantID := "dv." + contactOrg + "." + associateOp + "." + strings.ToLower(tc.message) + ".opportunity." + opportunityRow
			if a.EventID != wantID || ch.GetEventId() != wantID || msgs[0].msgID != wantID {
				t.Errorf("eventId %q, published %q, msgID %q; want %q", a.EventID, ch.GetEventId(), msgs[0].msgID, wantID)
			}
			if want := "nac.crm." + contactOrg + ".opportunity." + opportunityRow; msgs[0].subject != want {
				t.Errorf("subject %q, want %q", msgs[0].subject, want)
			}
			if got := f.requests("dataverse", "opportunity", tc.message, "accepted"); got != 1 {
				t.Errorf("accepted{opportunity,%s} = %v, want 1", tc.message, got)
			}
		})
	}
	t.Run("Associate of a listed table's row as the Target", func(t *testing.T) {
		f := newFixture(t)
		body := associateBody(t, "Associate", "contact_leads", entityReference("contact", contactRow), entityReference("lead", opportunityRow))
		decodeAccepted(t, f.do(t, http.MethodPost, dataverseURL(testKey), "application/json", body, nil), "accepted")
		if msgs := f.pub.stored(); len(msgs) != 1 || decodeChange(t, msgs[0]).GetTable() != "contact" {
			t.Errorf("published %d, want the contact's change", len(msgs))
		}
	})
	t.Run("no listed table on either side is ignored", func(t *testing.T) {
		f := newFixture(t)
		body := associateBody(t, "Associate", "opportunitycompetitors_association",
			entityReference("opportunity", opportunityRow), entityReference("competitor", relatedContact), entityReference("lead", contactRow))
		a := decodeAccepted(t, f.do(t, http.MethodPost, dataverseURL(testKey), "application/json", body, nil), "ignored")
		if a.EventID != "" || f.pub.attempts != 0 {
			t.Errorf("eventId %q, %d publish attempts for an ignored change", a.EventID, f.pub.attempts)
		}
		if got := f.requests("dataverse", "other", "Associate", "ignored"); got != 1 {
			t.Errorf("ignored{other,Associate} = %v, want 1", got)
		}
	})
}

// TestOutcomeLabels checks that each refusal and acknowledgement without
// storing is counted under its own outcome.
func TestOutcomeLabels(t *testing.T) {
	t.Parallel()
	contact := contactFixture(t)
	big := withChanges(t, contact, func(doc map[string]any) { doc["Padding"] = strings.Repeat("x", 64<<10) })
	loop := withChanges(t, contact, func(doc map[string]any) {
		doc["SharedVariables"] = []any{map[string]any{"key": "tag", "value": "notatcompany"}}
	})
	ignored, err := os.ReadFile("remotecontext/testdata/albanianxrm-create-albxrm_alltypes.json")
	if err != nil {
		t.Fatal(err)
	}
	event := profileBody(t, "evt-1")
	for _, tc := range []struct {
		name                     string
		target, contentType      string
		body                     []byte
		header                   map[string]string
		status                   int
		endpoint, kind, op, outc string
	}{
		{"too large", dataverseURL(testKey), "application/json", big, nil, http.StatusRequestEntityTooLarge, "dataverse", "", "", "too_large"},
		{"unsupported media type", dataverseURL(testKey), "text/plain", contact, nil, http.StatusUnsupportedMediaType, "dataverse", "", "", "unsupported_media_type"},
		{"unauthorized", dataverseURL(rotatedKey + "x"), "application/json", contact, nil, http.StatusUnauthorized, "dataverse", "", "", "unauthorized"},
		{"loop", dataverseURL(testKey), "application/json", loop, nil, http.StatusAccepted, "dataverse", "contact", "Update", "loop"},
		{"ignored", dataverseURL(testKey), "application/json", ignored, nil, http.StatusAccepted, "dataverse", "other", "Create", "ignored"},
		{"profile too large", "/webhooks/profile", "application/json", big, signed(big), http.StatusRequestEntityTooLarge, "profile", "", "", "too_large"},
		{"profile unsupported media type", "/webhooks/profile", "application/xml", event, signed(event), http.StatusUnsupportedMediaType, "profile", "", "", "unsupported_media_type"},
		{"profile unauthorized", "/webhooks/profile", "application/json", event, signed(append(event, ' ')), http.StatusUnauthorized, "profile", "", "", "unauthorized"},
		{"profile unknown source", "/webhooks/profile/nobody", "application/json", event, signed(event), http.StatusNotFound, "profile", "", "", "unknown_source"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if got := f.requests(tc.endpoint, tc.kind, tc.op, tc.outc); got != 0 {
				t.Fatalf("%s counted %v before any request", tc.outc, got)
			}
			rec := f.do(t, http.MethodPost, tc.target, tc.contentType, tc.body, tc.header)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d; %s", rec.Code, tc.status, rec.Body)
			}
			if got := f.requests(tc.endpoint, tc.kind, tc.op, tc.outc); got != 1 {
				t.Errorf("requests{%s,%q,%q,%s} = %v, want 1", tc.endpoint, tc.kind, tc.op, tc.outc, got)
			}
			if f.pub.attempts != 0 {
				t.Errorf("%d publish attempts", f.pub.attempts)
			}
			// Exactly one series: the request was counted once, under one outcome.
			if n := testutil.CollectAndCount(f.svc.metrics.requests); n != 1 {
				t.Errorf("%d request series, want 1", n)
			}
		})
	}
}
