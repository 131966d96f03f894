package devstack_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/notatcompany/notatcompany/services/devstack"
)

func connectAs(t *testing.T, url string, opts ...nats.Option) (*nats.Conn, error) {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err == nil {
		t.Cleanup(nc.Close)
	}
	return nc, err
}

// The devstack's NATS is like production's: no credentials, no connection;
// each service has its own user, and ingest, the one facing the internet,
// cannot write the pipeline's audit trail (it may redrive a dead decision,
// which the dead letter test shows).
func TestNATSIsAuthenticated(t *testing.T) {
	t.Parallel()
	stack, _ := startStack(t, t.TempDir())
	pw := stack.Secrets.NATS

	if _, err := connectAs(t, stack.NATSURL); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("unauthenticated connect: %v, want an authorization violation", err)
	}
	if _, err := connectAs(t, stack.NATSURL, nats.UserInfo(devstack.NATSUserIngest, pw.Writer)); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("ingest with the writer's password: %v, want an authorization violation", err)
	}

	cli, err := connectAs(t, stack.NATSURL, nats.UserInfo(devstack.NATSUserCLI, pw.CLI))
	if err != nil {
		t.Fatalf("the CLI user: %v", err)
	}
	cliJS, _ := jetstream.New(cli)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	audit, err := cliJS.Stream(ctx, "NAC_AUDIT")
	if err != nil {
		t.Fatalf("the CLI user reads JetStream: %v", err)
	}

	violations := make(chan error, 4)
	ingest, err := connectAs(t, stack.NATSURL, nats.UserInfo(devstack.NATSUserIngest, pw.Ingest),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }))
	if err != nil {
		t.Fatalf("ingest's user: %v", err)
	}
	ingestJS, _ := jetstream.New(ingest)
	subject := "nac.audit.decision." + devstack.DemoOrganizationID
	pubCtx, pubCancel := context.WithTimeout(ctx, 2*time.Second)
	defer pubCancel()
	if _, err := ingestJS.Publish(pubCtx, subject, []byte("forged")); err == nil {
		t.Fatal("ingest's user published a decision's audit record")
	}
	select {
	case err := <-violations:
		if !errors.Is(err, nats.ErrPermissionViolation) && !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Fatalf("async error %v, want a permissions violation", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no permissions violation reported")
	}
	if _, err := audit.GetLastMsgForSubject(ctx, subject); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Fatalf("NAC_AUDIT has a message on %s (err %v)", subject, err)
	}
}

// The banner says how to connect as the CLI user, like it gives the other
// demo keys, and keeps the services' passwords to itself.
func TestBannerTellsHowToConnectToNATS(t *testing.T) {
	t.Parallel()
	stack, _ := startStack(t, t.TempDir())
	var out bytes.Buffer
	stack.Banner(&out)
	pw := stack.Secrets.NATS
	want := "nats context save nac-devstack --server " + stack.NATSURL + " --user " + devstack.NATSUserCLI + " --password " + pw.CLI
	if !strings.Contains(out.String(), want) {
		t.Fatalf("banner lacks %q:\n%s", want, out.String())
	}
	for _, secret := range []string{pw.Ingest, pw.Validator, pw.Writer} {
		if strings.Contains(out.String(), secret) {
			t.Fatal("banner shows a service's NATS password")
		}
	}
}
