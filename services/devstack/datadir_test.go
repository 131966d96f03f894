package devstack_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/notatcompany/notatcompany/services/devstack"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
)

// While a devstack runs, its data directory is its own: a second devstack
// and make clean are refused. A PATCH of a row the stand-in does not hold
// is counted on the ops /metrics. Once stopped, clean removes everything.
func TestDataDirLockedMissingRowsCountedAndCleaned(t *testing.T) {
	t.Parallel()
	dir := t.TempDir() + "/data"
	stack, stop := startStack(t, dir)

	if err := devstack.Clean(dir, io.Discard); !errors.Is(err, devstack.ErrDataDirInUse) {
		t.Fatalf("clean while running = %v, want ErrDataDirInUse", err)
	}
	env := map[string]string{"NAC_DATA_DIR": dir, "NAC_HTTP_ADDR": "127.0.0.1:0", "NAC_OPS_ADDR": "127.0.0.1:0",
		"NAC_STANDIN_ADDR": "127.0.0.1:0", "NAC_NATS_ADDR": "127.0.0.1:-1", "NAC_LOG_LEVEL": "warn"}
	cfg, err := devstack.ParseConfig(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := devstack.Open(context.Background(), cfg, func(k string) string { return env[k] }, io.Discard); !errors.Is(err, devstack.ErrDataDirInUse) {
		t.Fatalf("a second devstack on the same data = %v, want ErrDataDirInUse", err)
	}

	c, err := dataverse.New(context.Background(), stack.StandinURL, dataverse.Credentials{TokenURL: stack.StandinURL + dataversetest.TokenPath,
		ClientID: devstack.ClientID, ClientSecret: stack.Secrets.ClientSecret}, dataverse.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	gone, _ := dataverse.RowOf("contacts", "0d0d0d0d-0000-4000-8000-000000000404")
	var status *dataverse.StatusError
	if err := c.Update(context.Background(), gone, map[string]any{"jobtitle": "x"}, nil); !errors.As(err, &status) || status.Status != http.StatusNotFound {
		t.Fatalf("PATCH of a missing row = %v, want a 404", err)
	}
	if got := metricLine(t, stack.OpsURL, "nac_standin_missing_row_patches_total"); !strings.HasSuffix(got, " 1") {
		t.Errorf("metric line %q, want a count of 1", got)
	}

	if err := stop(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := devstack.Clean(dir, &out); err != nil {
		t.Fatalf("clean after stop: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after clean, %s: %v, want it gone", dir, err)
	}
	if !strings.Contains(out.String(), "removed") {
		t.Errorf("clean said %q", out.String())
	}
}

// metricLine is the first /metrics line of the metric name.
func metricLine(t *testing.T, opsURL, name string) string {
	t.Helper()
	resp, err := http.Get(opsURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.HasPrefix(line, name+"{") || strings.HasPrefix(line, name+" ") {
			return line
		}
	}
	t.Fatalf("no %s on /metrics", name)
	return ""
}
