package lifecycle_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/notatcompany/notatcompany/services/shared/conf"
	"github.com/notatcompany/notatcompany/services/shared/httpserver"
	"github.com/notatcompany/notatcompany/services/shared/lifecycle"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestStartSeveralServices: one process serves several builds, as the
// devstack does: each service has its own connection, readiness check and
// labelled metrics, copies of one service are told apart, the addresses
// are reported as bound, a backing part outlives the workers, and what was
// built last stops first.
func TestStartSeveralServices(t *testing.T) {
	ns := testkit.NATSServer(t)
	common := conf.Common{NATSURL: ns.ClientURL(), StreamReplicas: 1}
	ev := &events{}
	backing := listen(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("backing")) }))
	counted := func(name string) lifecycle.Build {
		return func(_ context.Context, env lifecycle.Env) (lifecycle.Parts, error) {
			if env.JS == nil {
				return lifecycle.Parts{}, errors.New("no JetStream")
			}
			c := prometheus.NewCounter(prometheus.CounterOpts{Name: "nac_test_builds_total", Help: "builds"})
			env.Registerer.MustRegister(c)
			c.Inc()
			work := func(ctx context.Context) error {
				<-ctx.Done()
				if code, _ := get(t, "http://"+backing.Addr()+"/"); code == http.StatusOK {
					ev.add(name + " saw backing")
				}
				return nil
			}
			return lifecycle.Parts{Workers: []func(context.Context) error{work}, OnStopped: []func(){func() { ev.add(name + " stopped") }}}, nil
		}
	}
	public := func(context.Context, lifecycle.Env) (lifecycle.Parts, error) {
		srv, err := httpserver.Listen("127.0.0.1:0", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("public")) }))
		return lifecycle.Parts{Public: []*httpserver.Server{srv}}, err
	}
	p, err := lifecycle.Start(context.Background(), lifecycle.Options{Log: logger(), OpsAddr: "127.0.0.1:0", ShutdownTimeout: 5 * time.Second},
		lifecycle.Service{Name: "standin", Build: func(context.Context, lifecycle.Env) (lifecycle.Parts, error) {
			return lifecycle.Parts{Backing: []*httpserver.Server{backing}, OnStopped: []func(){func() { ev.add("standin stopped") }}}, nil
		}},
		lifecycle.Service{Name: "ingest", Common: common, Build: public},
		lifecycle.Service{Name: "writer", Common: common, Build: counted("writer-0")},
		lifecycle.Service{Name: "writer", Common: common, Replica: 1, Build: counted("writer-1")},
	)
	if err != nil {
		t.Fatal(err)
	}
	if addrs := p.PublicAddrs(); len(addrs) != 1 || strings.HasSuffix(addrs[0], ":0") {
		t.Fatalf("public addresses %q, want the one bound", addrs)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	ops := "http://" + p.OpsAddr()
	testkit.WaitHTTP(t, ops+"/healthz", http.StatusOK, 5*time.Second)
	if code, body := get(t, "http://"+p.PublicAddrs()[0]+"/"); code != http.StatusOK || body != "public" {
		t.Errorf("public server answered %d %q", code, body)
	}
	if code, body := get(t, ops+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz %d %q", code, body)
	}
	_, metrics := get(t, ops+"/metrics")
	for _, want := range []string{
		`nac_test_builds_total{nac_service="writer",replica="0"} 1`,
		`nac_test_builds_total{nac_service="writer",replica="1"} 1`,
	} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	got := ev.get()
	for _, w := range []string{"writer-0", "writer-1"} {
		if index(got, w+" saw backing") < 0 {
			t.Errorf("events %q: the backing server stopped before %s's worker", got, w)
		}
	}
	if want := []string{"writer-1 stopped", "writer-0 stopped", "standin stopped"}; !slices.Equal(slices.DeleteFunc(got, func(e string) bool {
		return !strings.HasSuffix(e, " stopped")
	}), want) {
		t.Errorf("events %q: want OnStopped last service first, %q", got, want)
	}
	if _, err := net.DialTimeout("tcp", backing.Addr(), time.Second); err == nil {
		t.Error("the backing server still accepts connections after Run returned")
	}
}

// TestStartReleasesOnFailure: a build that fails leaves nothing behind of
// the ones before it: their listeners are closed and their OnStopped ran.
func TestStartReleasesOnFailure(t *testing.T) {
	var addr string
	stopped := false
	first := func(context.Context, lifecycle.Env) (lifecycle.Parts, error) {
		srv, err := httpserver.Listen("127.0.0.1:0", http.NotFoundHandler())
		if err != nil {
			return lifecycle.Parts{}, err
		}
		addr = srv.Addr()
		return lifecycle.Parts{Public: []*httpserver.Server{srv}, OnStopped: []func(){func() { stopped = true }}}, nil
	}
	boom := errors.New("boom")
	_, err := lifecycle.Start(context.Background(), lifecycle.Options{Log: logger(), OpsAddr: "127.0.0.1:0", ShutdownTimeout: time.Second},
		lifecycle.Service{Name: "first", Build: first},
		lifecycle.Service{Name: "second", Build: func(context.Context, lifecycle.Env) (lifecycle.Parts, error) { return lifecycle.Parts{}, boom }},
	)
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "second") {
		t.Fatalf("Start = %v, want the second build's error, named", err)
	}
	if !stopped {
		t.Error("the first build's OnStopped did not run")
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("the first build's listener still accepts connections")
	}
}
