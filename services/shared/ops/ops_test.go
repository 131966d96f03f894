package ops_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/notatcompany/notatcompany/services/shared/ops"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

func TestHealthz(t *testing.T) {
	var ready ops.Readiness
	ready.Add("broken", func() error { return errors.New("down") })
	ready.Drain()
	h := ops.Handler(&ready, prometheus.NewRegistry())
	// Liveness does not depend on readiness.
	if code, body := get(t, h, "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz = %d %q, want 200 ok", code, body)
	}
}

func TestReadyz(t *testing.T) {
	var ready ops.Readiness
	var natsErr error
	ready.Add("nats", func() error { return natsErr })
	ready.Add("store", func() error { return nil })
	h := ops.Handler(&ready, prometheus.NewRegistry())

	if code, body := get(t, h, "/readyz"); code != http.StatusOK || body != "ready\n" {
		t.Errorf("/readyz = %d %q, want 200 ready", code, body)
	}
	if err := ready.Check(); err != nil {
		t.Errorf("Check = %v, want nil", err)
	}

	natsErr = errors.New("nats RECONNECTING")
	code, body := get(t, h, "/readyz")
	if code != http.StatusServiceUnavailable {
		t.Errorf("/readyz with a failing check = %d, want 503", code)
	}
	if !strings.Contains(body, "nats: nats RECONNECTING") {
		t.Errorf("/readyz body %q does not name the failing check", body)
	}
	if strings.Contains(body, "store") {
		t.Errorf("/readyz body %q names a passing check", body)
	}

	natsErr = nil
	if code, _ := get(t, h, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after recovery = %d, want 200", code)
	}

	ready.Drain()
	code, body = get(t, h, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "shutting down") {
		t.Errorf("/readyz after Drain = %d %q, want 503 shutting down", code, body)
	}
	if ready.Check() == nil {
		t.Error("Check after Drain = nil")
	}
}

func TestReadyzReportsEveryFailure(t *testing.T) {
	var ready ops.Readiness
	ready.Add("a", func() error { return errors.New("one") })
	ready.Add("b", func() error { return errors.New("two") })
	err := ready.Check()
	if err == nil || !strings.Contains(err.Error(), "a: one") || !strings.Contains(err.Error(), "b: two") {
		t.Errorf("Check = %v, want both failures", err)
	}
}

func TestReadyzOnlyGet(t *testing.T) {
	var ready ops.Readiness
	h := ops.Handler(&ready, prometheus.NewRegistry())
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/readyz", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /readyz = %d, want 405", rec.Code)
	}
}

func TestMetrics(t *testing.T) {
	var ready ops.Readiness
	reg := ops.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "nac_test_total", Help: "A test counter."})
	reg.MustRegister(c)
	c.Add(3)
	h := ops.Handler(&ready, reg)
	code, body := get(t, h, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d, want 200", code)
	}
	for _, want := range []string{"nac_test_total 3", "go_goroutines", "process_"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
