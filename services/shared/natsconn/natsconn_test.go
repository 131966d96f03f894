package natsconn_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/notatcompany/notatcompany/services/shared/conf"
	"github.com/notatcompany/notatcompany/services/shared/natsconn"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// dial connects to ns with auth, through the same path as the services:
// the common configuration.
func dial(t *testing.T, ns *server.Server, auth conf.NATSAuth) (*nats.Conn, error) {
	t.Helper()
	return dialURL(t, ns.ClientURL(), auth)
}

func dialURL(t *testing.T, url string, auth conf.NATSAuth) (*nats.Conn, error) {
	t.Helper()
	nc, err := natsconn.ConnectCommon(conf.Common{NATSURL: url, NATSAuth: auth}, "nac-test", quiet)
	if err == nil {
		t.Cleanup(nc.Close)
	}
	return nc, err
}

// mustUseJetStream proves the connection is a working one, not just an
// open socket: JetStream answers on it.
func mustUseJetStream(t *testing.T, nc *nats.Conn) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		t.Fatalf("JetStream on the authenticated connection: %v", err)
	}
}

func mustRefuse(t *testing.T, what string, nc *nats.Conn, err error, want error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: connected (status %s), want refused", what, nc.Status())
	}
	if want != nil && !errors.Is(err, want) {
		t.Fatalf("%s: %v, want %v", what, err, want)
	}
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUserAndPassword(t *testing.T) {
	ns := testkit.NATSServerWith(t, func(o *server.Options) {
		o.Users = []*server.User{{Username: "nac-writer", Password: "s3cret-s3cret-s3cret"}}
	})
	nc, err := dial(t, ns, conf.NATSAuth{User: "nac-writer", Password: "s3cret-s3cret-s3cret"})
	if err != nil {
		t.Fatalf("right password: %v", err)
	}
	mustUseJetStream(t, nc)
	nc, err = dial(t, ns, conf.NATSAuth{})
	mustRefuse(t, "no credentials", nc, err, nats.ErrAuthorization)
	nc, err = dial(t, ns, conf.NATSAuth{User: "nac-writer", Password: "wrong"})
	mustRefuse(t, "wrong password", nc, err, nats.ErrAuthorization)
}

func TestUserinfoInTheURLStillWorks(t *testing.T) {
	ns := testkit.NATSServerWith(t, func(o *server.Options) {
		o.Users = []*server.User{{Username: "nac-ingest", Password: "pw-in-the-url"}}
	})
	url := strings.Replace(ns.ClientURL(), "nats://", "nats://nac-ingest:pw-in-the-url@", 1)
	nc, err := dialURL(t, url, conf.NATSAuth{})
	if err != nil {
		t.Fatalf("userinfo in the URL: %v", err)
	}
	mustUseJetStream(t, nc)
	if strings.Contains(nc.ConnectedUrlRedacted(), "pw-in-the-url") {
		t.Fatalf("redacted URL %q shows the password", nc.ConnectedUrlRedacted())
	}
}

func TestToken(t *testing.T) {
	ns := testkit.NATSServerWith(t, func(o *server.Options) { o.Authorization = "tok-0123456789abcdef" })
	nc, err := dial(t, ns, conf.NATSAuth{Token: "tok-0123456789abcdef"})
	if err != nil {
		t.Fatalf("right token: %v", err)
	}
	mustUseJetStream(t, nc)
	nc, err = dial(t, ns, conf.NATSAuth{})
	mustRefuse(t, "no token", nc, err, nats.ErrAuthorization)
	nc, err = dial(t, ns, conf.NATSAuth{Token: "tok-wrong"})
	mustRefuse(t, "wrong token", nc, err, nats.ErrAuthorization)
}

func userSeed(t *testing.T) (seed []byte, pub string) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ = kp.Seed()
	pub, _ = kp.PublicKey()
	return seed, pub
}

func TestNKeySeedFile(t *testing.T) {
	seed, pub := userSeed(t)
	other, _ := userSeed(t)
	ns := testkit.NATSServerWith(t, func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} })
	nc, err := dial(t, ns, conf.NATSAuth{NKeySeedFile: writeFile(t, "user.nk", seed)})
	if err != nil {
		t.Fatalf("right seed: %v", err)
	}
	mustUseJetStream(t, nc)
	nc, err = dial(t, ns, conf.NATSAuth{})
	mustRefuse(t, "no seed", nc, err, nats.ErrAuthorization)
	nc, err = dial(t, ns, conf.NATSAuth{NKeySeedFile: writeFile(t, "other.nk", other)})
	mustRefuse(t, "another user's seed", nc, err, nats.ErrAuthorization)
}

func TestABadSeedFileFailsBeforeDialing(t *testing.T) {
	ns := testkit.NATSServer(t)
	nc, err := dial(t, ns, conf.NATSAuth{NKeySeedFile: writeFile(t, "bad.nk", []byte("not a seed"))})
	mustRefuse(t, "bad seed", nc, err, nil)
	if !strings.Contains(err.Error(), "NAC_NATS_NKEY_SEED_FILE") {
		t.Fatalf("error %q does not name the setting", err)
	}
}
