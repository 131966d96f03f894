package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/ingest/console"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/evaluations"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

// BenchmarkConsoleFlaggedPage is one page of the console's flagged list of
// an organization with 10,000 flagged contacts (their evaluations and
// index keys in nac_evaluations), rendered through the admin API's list
// as the console serves it; the goal is 100 ms a page.
func BenchmarkConsoleFlaggedPage(b *testing.B) {
	const flagged = 10000
	js, _ := testkit.JetStream(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	kv, err := js.KeyValue(ctx, bus.BucketEvaluations)
	if err != nil {
		b.Fatal(err)
	}
	for i := range flagged {
		contact := fmt.Sprintf("c0000000-0000-4000-8000-%012d", i)
		rec := &eventsv1.Evaluation{Result: &eventsv1.Decision{OrganizationId: contactOrg, ContactId: contact, Value: eventsv1.Flag_FLAG_NOT_AT_COMPANY,
			Reason: "left_company", Confidence: 0.93, DecidedAt: timestamppb.Now()}, Threshold: 0.8, AccountId: explainAccount,
			Scope: &eventsv1.ScopePath{InScope: true, Via: "contact_owner", UserId: explainSyncUser}}
		data, _ := proto.Marshal(rec)
		if _, err := kv.Put(ctx, evaluations.Key(contactOrg, contact), data); err != nil {
			b.Fatal(err)
		}
		if _, err := kv.Put(ctx, evaluations.FlaggedKey(contactOrg, contact), []byte(`{}`)); err != nil {
			b.Fatal(err)
		}
	}
	reader, err := evaluations.NewReader(ctx, js)
	if err != nil {
		b.Fatal(err)
	}
	cfg := testConfig()
	cfg.AdminTokens = []string{testAdminToken}
	svc := New(cfg, &fakePublisher{}, fakeAdmin{}, nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	svc.SetExplainReader(reader)
	h, err := svc.WithConsole(svc.Routes(), console.Options{Orgs: fakeOrgList{}})
	if err != nil {
		b.Fatal(err)
	}
	// A session, as a login sets it.
	login := httptest.NewRecorder()
	h.ServeHTTP(login, httptest.NewRequest(http.MethodGet, "/console/login", nil))
	form := csrfField.FindStringSubmatch(login.Body.String())
	req := httptest.NewRequest(http.MethodPost, "/console/login", strings.NewReader("csrf="+form[1]+"&name=bench&token="+testAdminToken))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range login.Result().Cookies() {
		req.AddCookie(c)
	}
	done := httptest.NewRecorder()
	h.ServeHTTP(done, req)
	var session *http.Cookie
	for _, c := range done.Result().Cookies() {
		if c.Name == "nac_console" {
			session = c
		}
	}
	if session == nil {
		b.Fatalf("no session: %d %s", done.Code, done.Body)
	}
	b.ResetTimer()
	for b.Loop() {
		page := httptest.NewRequest(http.MethodGet, "/console/orgs/"+contactOrg+"/flagged", nil)
		page.AddCookie(session)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, page)
		if rec.Code != http.StatusOK || strings.Count(rec.Body.String(), "left_company") != 50 {
			b.Fatalf("page: %d, %d rows", rec.Code, strings.Count(rec.Body.String(), "left_company"))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/page")
}
