package conf_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/notatcompany/notatcompany/services/shared/conf"
)

func parseCommon(t *testing.T, vars map[string]string) (conf.Common, error) {
	t.Helper()
	var c conf.Common
	p := conf.NewParser("svc", env(vars), io.Discard)
	c.Define(p, "127.0.0.1:9090")
	if err := p.Parse(nil); err != nil {
		t.Fatal(err)
	}
	c.Validate(p)
	return c, p.Err()
}

func file(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func seed(t *testing.T, create func() (nkeys.KeyPair, error)) []byte {
	t.Helper()
	kp, err := create()
	if err != nil {
		t.Fatal(err)
	}
	s, _ := kp.Seed()
	return s
}

func credsFile(t *testing.T) []byte {
	t.Helper()
	acc, _ := nkeys.CreateAccount()
	user, _ := nkeys.CreateUser()
	pub, _ := user.PublicKey()
	token, err := jwt.NewUserClaims(pub).Encode(acc)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := user.Seed()
	b, err := jwt.FormatUserConfig(token, s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// selfSigned returns a certificate and its key, PEM-encoded.
func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

func TestNATSAuthEachMethodParses(t *testing.T) {
	seedPath := file(t, "user.nk", seed(t, nkeys.CreateUser))
	credsPath := file(t, "nac.creds", credsFile(t))
	cert, key := selfSigned(t)
	certPath, keyPath := file(t, "c.pem", cert), file(t, "c.key", key)
	pwPath := file(t, "pw", []byte("from-a-file\n"))
	for _, tc := range []struct {
		name string
		vars map[string]string
		want conf.NATSAuth
	}{
		{"none", nil, conf.NATSAuth{}},
		{"user and password", map[string]string{"NAC_NATS_USER": "nac-writer", "NAC_NATS_PASSWORD": "pw"},
			conf.NATSAuth{User: "nac-writer", Password: "pw"}},
		{"password from a file", map[string]string{"NAC_NATS_USER": "nac-writer", "NAC_NATS_PASSWORD_FILE": pwPath},
			conf.NATSAuth{User: "nac-writer", Password: "from-a-file"}},
		{"token", map[string]string{"NAC_NATS_TOKEN": "tok"}, conf.NATSAuth{Token: "tok"}},
		{"nkey", map[string]string{"NAC_NATS_NKEY_SEED_FILE": seedPath}, conf.NATSAuth{NKeySeedFile: seedPath}},
		{"creds", map[string]string{"NAC_NATS_CREDS_FILE": credsPath}, conf.NATSAuth{CredsFile: credsPath}},
		{"creds over mutual TLS", map[string]string{"NAC_NATS_CREDS_FILE": credsPath, "NAC_NATS_TLS_CA_FILE": certPath,
			"NAC_NATS_TLS_CERT_FILE": certPath, "NAC_NATS_TLS_KEY_FILE": keyPath},
			conf.NATSAuth{CredsFile: credsPath, TLSCAFile: certPath, TLSCertFile: certPath, TLSKeyFile: keyPath}},
		{"userinfo in the URL", map[string]string{"NAC_NATS_URL": "nats://u:p@nats:4222"}, conf.NATSAuth{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseCommon(t, tc.vars)
			if err != nil {
				t.Fatal(err)
			}
			if c.NATSAuth != tc.want {
				t.Fatalf("got %s, want %s", c.NATSAuth, tc.want)
			}
		})
	}
}

func TestNATSAuthProblemsReportedTogether(t *testing.T) {
	cert, key := selfSigned(t)
	otherCert, _ := selfSigned(t)
	for _, tc := range []struct {
		name string
		vars map[string]string
		want []string
	}{
		{"two methods", map[string]string{"NAC_NATS_TOKEN": "tok", "NAC_NATS_USER": "u", "NAC_NATS_PASSWORD": "p"},
			[]string{"choose one method", "NAC_NATS_USER/NAC_NATS_PASSWORD and NAC_NATS_TOKEN"}},
		{"userinfo and a token", map[string]string{"NAC_NATS_URL": "nats://a,nats://tok@b:4222", "NAC_NATS_TOKEN": "tok"},
			[]string{"userinfo in NAC_NATS_URL and NAC_NATS_TOKEN"}},
		{"user without password", map[string]string{"NAC_NATS_USER": "u"}, []string{"NAC_NATS_USER: needs NAC_NATS_PASSWORD"}},
		{"password without user", map[string]string{"NAC_NATS_PASSWORD": "p"}, []string{"NAC_NATS_PASSWORD: needs NAC_NATS_USER"}},
		{"unreadable password file", map[string]string{"NAC_NATS_USER": "u", "NAC_NATS_PASSWORD_FILE": "/nonexistent/pw"},
			[]string{"NAC_NATS_PASSWORD_FILE"}},
		{"cert without key", map[string]string{"NAC_NATS_TLS_CERT_FILE": file(t, "c.pem", cert)},
			[]string{"NAC_NATS_TLS_CERT_FILE and NAC_NATS_TLS_KEY_FILE: give both"}},
		{"key of another cert", map[string]string{"NAC_NATS_TLS_CERT_FILE": file(t, "o.pem", otherCert), "NAC_NATS_TLS_KEY_FILE": file(t, "c.key", key)},
			[]string{"NAC_NATS_TLS_CERT_FILE, NAC_NATS_TLS_KEY_FILE:"}},
		{"missing files", map[string]string{"NAC_NATS_CREDS_FILE": "/nonexistent/nac.creds", "NAC_NATS_TLS_CA_FILE": "/nonexistent/ca.pem"},
			[]string{"NAC_NATS_CREDS_FILE: open /nonexistent/nac.creds", "NAC_NATS_TLS_CA_FILE: open /nonexistent/ca.pem"}},
		{"not a seed", map[string]string{"NAC_NATS_NKEY_SEED_FILE": file(t, "x.nk", []byte("hello"))}, []string{"not an NKey seed"}},
		{"an account seed", map[string]string{"NAC_NATS_NKEY_SEED_FILE": file(t, "a.nk", seed(t, nkeys.CreateAccount))},
			[]string{"not a user NKey seed"}},
		{"not creds", map[string]string{"NAC_NATS_CREDS_FILE": file(t, "x.creds", cert)}, []string{"NAC_NATS_CREDS_FILE", "no user JWT"}},
		{"not a CA", map[string]string{"NAC_NATS_TLS_CA_FILE": file(t, "ca.pem", []byte("nope"))}, []string{"no PEM certificate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseCommon(t, tc.vars)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestNATSAuthEveryProblemInOneError(t *testing.T) {
	_, err := parseCommon(t, map[string]string{
		"NAC_NATS_TOKEN": "tok", "NAC_NATS_CREDS_FILE": "/nonexistent/nac.creds",
		"NAC_NATS_TLS_KEY_FILE": "/nonexistent/k", "NAC_LOG_FORMAT": "xml",
	})
	for _, w := range []string{"choose one method", "NAC_NATS_CREDS_FILE: open", "give both or neither", "NAC_LOG_FORMAT"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v lacks %q", err, w)
		}
	}
}

// The configuration may be printed or logged: its secrets never show.
func TestNATSAuthNeverShowsItsSecrets(t *testing.T) {
	const password, token = "pw-0123456789-secret", "tok-0123456789-secret"
	for _, a := range []conf.NATSAuth{{User: "nac-writer", Password: password}, {Token: token}} {
		c := conf.Common{NATSURL: "nats://nats:4222", NATSAuth: a}
		var logged bytes.Buffer
		slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "common", c, "auth", a)
		slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "auth", a)
		for _, out := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("%v", a), logged.String()} {
			if strings.Contains(out, password) || strings.Contains(out, token) {
				t.Fatalf("secret shown: %s", out)
			}
		}
		if !strings.Contains(fmt.Sprint(c), a.String()) {
			t.Fatalf("%v does not describe the method (%s)", c, a)
		}
	}
}
