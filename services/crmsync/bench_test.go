package crmsync

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
	"github.com/notatcompany/notatcompany/services/shared/syncjobs"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

func benchID(kind, i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012d", kind, i) }

// BenchmarkBackfill back-fills an organization of NAC_BENCH_CONTACTS
// contacts (100,000; with a fifth as many accounts, 30% as many
// opportunities and 200 users) from a stand-in with Dataverse's service
// protection limits whose every page takes NAC_BENCH_PAGE_MS (1000 ms),
// into JetStream, within a 6000 requests / 5 minutes budget. It prints the
// requests used, their share of the budget, the wall time, the peak heap
// and how long writing the flags of NAC_BENCH_LEAVERS_PCT percent of the
// contacts (10) would take at what the budget leaves.
func BenchmarkBackfill(b *testing.B) {
	contacts := envInt("NAC_BENCH_CONTACTS", 100_000)
	pageDelay := time.Duration(envInt("NAC_BENCH_PAGE_MS", 1000)) * time.Millisecond
	leavers := contacts * envInt("NAC_BENCH_LEAVERS_PCT", 10) / 100
	accounts, opps, users := max(1, contacts/5), contacts*3/10, 200
	org := "6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f"

	standin := dataversetest.New(dataversetest.Options{ClientID: "bench", ClientSecret: "secret", Limits: dataversetest.DataverseLimits()})
	standin.SetIdentity(dataversetest.Identity{OrganizationID: org})
	standin.DefineColumn("contact", "nac_orgchangestatus", "Picklist", 0, 1, 2)
	for i := range users {
		standin.Seed("systemusers", benchID(1, i), map[string]any{"fullname": fmt.Sprintf("User %d", i), "isdisabled": false})
	}
	for i := range accounts {
		standin.Seed("accounts", benchID(2, i), map[string]any{"name": fmt.Sprintf("Account %d", i), "websiteurl": fmt.Sprintf("https://a%d.example", i),
			"statecode": float64(0), "_ownerid_value": benchID(1, i%users)})
	}
	for i := range contacts {
		standin.Seed("contacts", benchID(3, i), map[string]any{"firstname": "First", "lastname": fmt.Sprintf("Last%d", i),
			"emailaddress1": fmt.Sprintf("c%d@a%d.example", i, i%accounts), "statecode": float64(0), "nac_orgchangestatus": float64(0),
			"_parentcustomerid_value": benchID(2, i%accounts), "_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "account",
			"_ownerid_value": benchID(1, i%users), "modifiedon": "2025-01-01T00:00:00Z"})
	}
	for i := range opps {
		standin.Seed("opportunities", benchID(4, i), map[string]any{"statecode": float64(0), "_parentcontactid_value": benchID(3, i),
			"_customerid_value": benchID(2, i%accounts), "_ownerid_value": benchID(1, i%users)})
	}
	srv := httptest.NewServer(standin.Handler())
	b.Cleanup(srv.Close)
	standin.SetReadLatency(pageDelay)

	js, _ := testkit.JetStream(b)
	ctx := context.Background()
	client, err := dataverse.New(ctx, srv.URL, dataverse.Credentials{TokenURL: srv.URL + dataversetest.TokenPath, ClientID: "bench", ClientSecret: "secret"},
		dataverse.Options{Timeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	// The writer's budget shape: a burst of a sixtieth, the rest spread.
	budget := rate.NewLimiter(rate.Limit(float64(6000-100)/300), 100)
	var requests atomic.Int64
	target := &Target{Reader: client, Acquire: func(ctx context.Context, n int) (func(), error) {
		requests.Add(int64(n))
		return func() {}, budget.WaitN(ctx, n)
	}}
	// No validator drains NAC_CRM here: the lag bound is off, so the
	// figures are the reads and the publishing alone.
	cfg := Config{Interval: 24 * time.Hour, PageSize: 5000, MaxLag: 1 << 30, Columns: cols}
	s, err := New(ctx, cfg, Deps{JS: js, Targets: func(string) *Target { return target }, Owner: "bench",
		Log: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	s.evaluationWait = 0 // nothing evaluates here
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	go func() {
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				runtime.ReadMemStats(&m)
				if m.HeapInuse > peak.Load() {
					peak.Store(m.HeapInuse)
				}
			}
		}
	}()
	b.ResetTimer()
	var st syncjobs.Status
	start := time.Now()
	for i := range b.N {
		claimedSt, rev, err := s.jobs.claim(ctx, org, syncjobs.KindBackfill, fmt.Sprintf("bench-%d", i), time.Now())
		if err != nil {
			b.Fatal(err)
		}
		s.run(ctx, org, claimedSt, rev)
		if st, _, _, err = s.jobs.get(ctx, org); err != nil || st.State != syncjobs.StateDone {
			b.Fatalf("job %s: %s %v", st.State, st.Error, err)
		}
	}
	wall := time.Since(start) / time.Duration(b.N)
	b.StopTimer()
	close(stop)
	perRun := int(requests.Load()) / b.N
	// What the budget leaves for writes in the window the reads used, then
	// the full rate: one operation per flag.
	perSecond := float64(6000) / 300
	writeTime := time.Duration(float64(leavers+perRun) / perSecond * float64(time.Second))
	b.ReportMetric(float64(perRun), "requests/op")
	b.ReportMetric(float64(perRun)/6000*100, "%budget")
	b.ReportMetric(float64(st.EventsPublished), "events/op")
	b.Logf("back-fill of %d contacts, %d accounts, %d opportunities, %d users (pages answered in %s each):", contacts, accounts, opps, users, pageDelay)
	b.Logf("  requests %d (%.2f%% of the 6000 / 5 min budget), 429s %d, wall time %s, events published %d",
		perRun, float64(perRun)/60, standin.Throttled(), wall.Round(time.Millisecond), st.EventsPublished)
	b.Logf("  peak heap in use %.0f MiB (%.0f MiB before the read: the stand-in's rows and the embedded server)",
		float64(peak.Load())/(1<<20), float64(base.HeapInuse)/(1<<20))
	b.Logf("  writing %d flags (%d%% of the contacts) at the budget: %s", leavers, envInt("NAC_BENCH_LEAVERS_PCT", 10), writeTime.Round(time.Second))
	if standin.Throttled() != 0 {
		b.Errorf("%d answers were 429", standin.Throttled())
	}
}
