package lifecycle_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/notatcompany/notatcompany/services/shared/conf"
	"github.com/notatcompany/notatcompany/services/shared/lifecycle"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

// StartService connects with the service's configured NATS credentials: without
// them the server refuses it before anything is built; with them the
// topology is declared and the service is built.
func TestStartServiceAuthenticatesToNATS(t *testing.T) {
	ns := testkit.NATSServerWith(t, func(o *server.Options) {
		o.Users = []*server.User{{Username: "nac-ingest", Password: "pw-0123456789abcdef"}}
	})
	common := conf.Common{NATSURL: ns.ClientURL(), OpsAddr: "127.0.0.1:0", LogFormat: "text", LogLevel: "error",
		StreamReplicas: 1, ShutdownTimeout: time.Second}
	built := errors.New("built")
	serve := func(c conf.Common) (bool, error) {
		var reached bool
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := lifecycle.StartService(ctx, "ingest", c, io.Discard, func(context.Context, lifecycle.Env) (lifecycle.Parts, error) {
			reached = true
			return lifecycle.Parts{}, built
		})
		return reached, err
	}

	if reached, err := serve(common); reached || !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("without credentials: built=%v err=%v, want an authorization violation before building", reached, err)
	}
	common.NATSAuth = conf.NATSAuth{User: "nac-ingest", Password: "pw-0123456789abcdef"}
	if reached, err := serve(common); !reached || !errors.Is(err, built) {
		t.Fatalf("with credentials: built=%v err=%v, want the service built", reached, err)
	}
}

// The ops server of every service exports the build it runs, labelled with
// the service.
func TestServeExportsBuildInfo(t *testing.T) {
	ns := testkit.NATSServer(t)
	common := conf.Common{NATSURL: ns.ClientURL(), OpsAddr: "127.0.0.1:0", LogFormat: "json", LogLevel: "info",
		StreamReplicas: 1, ShutdownTimeout: 5 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	proc, err := lifecycle.StartService(ctx, "writer", common, io.Discard, func(context.Context, lifecycle.Env) (lifecycle.Parts, error) {
		return lifecycle.Parts{}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- proc.Run(ctx) }()
	resp, err := http.Get("http://" + proc.OpsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`nac_build_info{commit="unknown",date="unknown",goversion=%q,nac_service="writer",version="dev"} 1`, runtime.Version())
	if !strings.Contains(string(body), want) {
		t.Errorf("/metrics lacks %s:\n%.3000s", want, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v after cancel, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return within 15s of cancel")
	}
}
