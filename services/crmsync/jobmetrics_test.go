package crmsync

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/syncjobs"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

// The gauges come from the stored jobs, so a restarted writer reports the
// last good sweep it never ran itself.
func TestJobCollectorReportsStoredJobs(t *testing.T) {
	js, _ := testkit.JetStream(t)
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, bus.BucketSyncJobs)
	if err != nil {
		t.Fatal(err)
	}
	okOrg, failedOrg, runningOrg := "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222", "33333333-3333-3333-3333-333333333333"
	lastOK := time.Date(2026, 11, 30, 4, 0, 0, 0, time.UTC).UnixMilli()
	for org, st := range map[string]syncjobs.Status{
		okOrg:      {Kind: syncjobs.KindSweep, State: syncjobs.StateDone, LastOKAt: lastOK},
		failedOrg:  {Kind: syncjobs.KindBackfill, State: syncjobs.StateFailed, Error: "token refused"},
		runningOrg: {Kind: syncjobs.KindSweep, State: syncjobs.StateRunning, LastOKAt: lastOK - 1000},
	} {
		b, _ := json.Marshal(st)
		if _, err := kv.Put(ctx, syncjobs.Key(org), b); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(jobCollector{kv: kv, timeout: 5 * time.Second})
	want := `
# HELP nac_sync_last_job_failed 1 when the organization's latest sync job failed, else 0.
# TYPE nac_sync_last_job_failed gauge
nac_sync_last_job_failed{kind="backfill",org="` + failedOrg + `"} 1
nac_sync_last_job_failed{kind="sweep",org="` + okOrg + `"} 0
# HELP nac_sync_last_success_timestamp_seconds When the organization's last sync job (back-fill or sweep) finished without error, as a Unix time.
# TYPE nac_sync_last_success_timestamp_seconds gauge
nac_sync_last_success_timestamp_seconds{org="` + okOrg + `"} 1.7960112e+09
nac_sync_last_success_timestamp_seconds{org="` + runningOrg + `"} 1.796011199e+09
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}
