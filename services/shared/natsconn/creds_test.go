package natsconn_test

import (
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/notatcompany/notatcompany/services/shared/conf"
	"github.com/notatcompany/notatcompany/services/shared/natsembed"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

// operator is a decentralized-auth (JWT) setup: an operator, one account
// with JetStream, and users whose .creds the account signs.
type operator struct {
	t        *testing.T
	op       *jwt.OperatorClaims
	opKey    nkeys.KeyPair
	account  nkeys.KeyPair
	accPub   string
	claims   *jwt.AccountClaims
	resolver *server.MemAccResolver
	sysPub   string
}

func newOperator(t *testing.T) *operator {
	t.Helper()
	opKey, _ := nkeys.CreateOperator()
	opPub, _ := opKey.PublicKey()
	op := jwt.NewOperatorClaims(opPub)
	if _, err := op.Encode(opKey); err != nil {
		t.Fatal(err)
	}
	acc, _ := nkeys.CreateAccount()
	accPub, _ := acc.PublicKey()
	claims := jwt.NewAccountClaims(accPub)
	claims.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	o := &operator{t: t, op: op, opKey: opKey, account: acc, accPub: accPub, claims: claims, resolver: &server.MemAccResolver{}}
	o.storeAccount()
	// JetStream runs its API through a system account, which operator mode
	// must name.
	sys, _ := nkeys.CreateAccount()
	o.sysPub, _ = sys.PublicKey()
	sysJWT, err := jwt.NewAccountClaims(o.sysPub).Encode(opKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.resolver.Store(o.sysPub, sysJWT); err != nil {
		t.Fatal(err)
	}
	return o
}

// storeAccount signs the account's claims and hands them to the resolver.
func (o *operator) storeAccount() {
	o.t.Helper()
	s, err := o.claims.Encode(o.opKey)
	if err != nil {
		o.t.Fatal(err)
	}
	if err := o.resolver.Store(o.accPub, s); err != nil {
		o.t.Fatal(err)
	}
}

func (o *operator) configure(so *server.Options) {
	so.TrustedOperators = []*jwt.OperatorClaims{o.op}
	so.AccountResolver = o.resolver
	so.SystemAccount = o.sysPub
}

// creds returns a .creds file's contents for a new user, and its key.
func (o *operator) creds() ([]byte, string) {
	o.t.Helper()
	user, _ := nkeys.CreateUser()
	pub, _ := user.PublicKey()
	seed, _ := user.Seed()
	uc := jwt.NewUserClaims(pub)
	token, err := uc.Encode(o.account)
	if err != nil {
		o.t.Fatal(err)
	}
	b, err := jwt.FormatUserConfig(token, seed)
	if err != nil {
		o.t.Fatal(err)
	}
	return b, pub
}

func TestCredsFile(t *testing.T) {
	op := newOperator(t)
	ns := testkit.NATSServerWith(t, op.configure)
	good, _ := op.creds()
	nc, err := dial(t, ns, conf.NATSAuth{CredsFile: writeFile(t, "nac.creds", good)})
	if err != nil {
		t.Fatalf("right creds: %v", err)
	}
	mustUseJetStream(t, nc)
	nc, err = dial(t, ns, conf.NATSAuth{})
	mustRefuse(t, "no creds", nc, err, nats.ErrAuthorization)

	stranger := newOperator(t) // signed by an account the server does not trust
	foreign, _ := stranger.creds()
	nc, err = dial(t, ns, conf.NATSAuth{CredsFile: writeFile(t, "foreign.creds", foreign)})
	mustRefuse(t, "creds of another operator", nc, err, nats.ErrAuthorization)
}

// A rotated .creds file is read again when the client reconnects: the old
// user is revoked, the server restarts, and the connection comes back as
// the new user.
func TestCredsFileRotatesOnReconnect(t *testing.T) {
	op := newOperator(t)
	dir := t.TempDir()
	start := func(port int) *server.Server {
		ns, err := natsembed.Start(natsembed.Options{Port: port, StoreDir: dir, Configure: op.configure})
		if err != nil {
			t.Fatal(err)
		}
		return ns
	}
	ns := start(-1)
	_, portStr, _ := net.SplitHostPort(ns.Addr().String())
	port, _ := strconv.Atoi(portStr)

	oldCreds, oldUser := op.creds()
	path := writeFile(t, "nac.creds", oldCreds)
	nc, err := dial(t, ns, conf.NATSAuth{CredsFile: path})
	if err != nil {
		ns.Shutdown()
		t.Fatalf("first creds: %v", err)
	}
	newCreds, _ := op.creds()
	if err := os.WriteFile(path, newCreds, 0o600); err != nil {
		t.Fatal(err)
	}
	op.claims.Revoke(oldUser)
	op.storeAccount()
	ns.Shutdown()
	ns.WaitForShutdown()
	testkit.Eventually(t, "disconnected", 10*time.Second, func() bool { return nc.Status() != nats.CONNECTED })

	ns = start(port)
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	testkit.Eventually(t, "reconnected with the rotated creds", 30*time.Second, func() bool { return nc.Status() == nats.CONNECTED })
	mustUseJetStream(t, nc)

	// The revoked user is refused: the reconnect did not use the old file.
	nc2, err := dial(t, ns, conf.NATSAuth{CredsFile: writeFile(t, "old.creds", oldCreds)})
	mustRefuse(t, "revoked creds", nc2, err, nil)
}
