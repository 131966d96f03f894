package lifecycle_test

import (
	"context"
	"errors"
	"io"
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
