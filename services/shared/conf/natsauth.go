package conf

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"

	"github.com/nats-io/nkeys"
)

// NATSAuth is how a service authenticates to NATS: at most one of user and
// password, a token, an NKey seed file or a .creds file (or userinfo in
// NAC_NATS_URL), and optionally TLS with a private CA and a client
// certificate. Files named here are read by the NATS client on every
// (re)connect, so a rotated Kubernetes Secret takes effect on the next one.
//
// Its String and LogValue never show a secret, so printing or logging the
// configuration is harmless.
type NATSAuth struct {
	User     string
	Password string // secret
	Token    string // secret
	// NKeySeedFile holds a user NKey seed (SU…). The public key is taken at
	// start; the seed is re-read to sign each connect's nonce.
	NKeySeedFile string
	// CredsFile is a .creds file: a user JWT and its NKey seed.
	CredsFile string
	// TLSCAFile verifies the server (PEM); empty: the system's roots.
	TLSCAFile string
	// TLSCertFile and TLSKeyFile are the client certificate (mutual TLS).
	TLSCertFile string
	TLSKeyFile  string
}

// Define adds the NATS authentication settings to p.
func (a *NATSAuth) Define(p *Parser) {
	p.String(&a.User, "nats-user", "NAC_NATS_USER", "", "NATS user name (password in NAC_NATS_PASSWORD or NAC_NATS_PASSWORD_FILE)")
	p.Secret(&a.Password, "NAC_NATS_PASSWORD")
	p.Secret(&a.Token, "NAC_NATS_TOKEN")
	p.String(&a.NKeySeedFile, "nats-nkey-seed-file", "NAC_NATS_NKEY_SEED_FILE", "", "file holding the NATS user's NKey seed")
	p.String(&a.CredsFile, "nats-creds-file", "NAC_NATS_CREDS_FILE", "", "NATS .creds file (user JWT and seed)")
	p.String(&a.TLSCAFile, "nats-tls-ca-file", "NAC_NATS_TLS_CA_FILE", "", "PEM CA bundle that verifies the NATS servers; empty: system roots")
	p.String(&a.TLSCertFile, "nats-tls-cert-file", "NAC_NATS_TLS_CERT_FILE", "", "PEM client certificate for mutual TLS")
	p.String(&a.TLSKeyFile, "nats-tls-key-file", "NAC_NATS_TLS_KEY_FILE", "", "PEM key of the client certificate")
}

// Methods lists the authentication methods configured, URL userinfo in
// natsURL included: none, or (validly) one.
func (a NATSAuth) Methods(natsURL string) []string {
	var m []string
	if URLHasUserinfo(natsURL) {
		m = append(m, "userinfo in NAC_NATS_URL")
	}
	if a.User != "" || a.Password != "" {
		m = append(m, "NAC_NATS_USER/NAC_NATS_PASSWORD")
	}
	if a.Token != "" {
		m = append(m, "NAC_NATS_TOKEN")
	}
	if a.NKeySeedFile != "" {
		m = append(m, "NAC_NATS_NKEY_SEED_FILE")
	}
	if a.CredsFile != "" {
		m = append(m, "NAC_NATS_CREDS_FILE")
	}
	return m
}

// TLS reports whether any TLS setting is given.
func (a NATSAuth) TLS() bool { return a.TLSCAFile != "" || a.TLSCertFile != "" || a.TLSKeyFile != "" }

// Validate records the problems of a in p: more than one method, a half
// pair, a file that cannot be read or does not hold what it should.
func (a *NATSAuth) Validate(p *Parser, natsURL string) {
	if m := a.Methods(natsURL); len(m) > 1 {
		p.Check(false, "NATS authentication: choose one method, got %s", strings.Join(m, " and "))
	}
	p.Check(a.User == "" || a.Password != "", "NAC_NATS_USER: needs NAC_NATS_PASSWORD (or NAC_NATS_PASSWORD_FILE)")
	p.Check(a.Password == "" || a.User != "", "NAC_NATS_PASSWORD: needs NAC_NATS_USER")
	p.Check((a.TLSCertFile == "") == (a.TLSKeyFile == ""), "NAC_NATS_TLS_CERT_FILE and NAC_NATS_TLS_KEY_FILE: give both or neither")
	if a.NKeySeedFile != "" {
		p.checkFile("NAC_NATS_NKEY_SEED_FILE", a.NKeySeedFile, userSeed)
	}
	if a.CredsFile != "" {
		p.checkFile("NAC_NATS_CREDS_FILE", a.CredsFile, creds)
	}
	if a.TLSCAFile != "" {
		p.checkFile("NAC_NATS_TLS_CA_FILE", a.TLSCAFile, caBundle)
	}
	if a.TLSCertFile != "" && a.TLSKeyFile != "" {
		if _, err := tls.LoadX509KeyPair(a.TLSCertFile, a.TLSKeyFile); err != nil {
			p.Check(false, "NAC_NATS_TLS_CERT_FILE, NAC_NATS_TLS_KEY_FILE: %v", err)
		}
	}
}

// checkFile reads path and records what is wrong with it, without ever
// quoting its contents.
func (p *Parser) checkFile(env, path string, valid func([]byte) error) {
	b, err := os.ReadFile(path)
	if err != nil {
		p.Check(false, "%s: %v", env, err)
		return
	}
	defer clear(b)
	if err := valid(b); err != nil {
		p.Check(false, "%s=%q: %v", env, path, err)
	}
}

func userSeed(b []byte) error {
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(b))))
	if err != nil {
		return fmt.Errorf("not an NKey seed")
	}
	defer kp.Wipe()
	pub, err := kp.PublicKey()
	if err != nil || !nkeys.IsValidPublicUserKey(pub) {
		return fmt.Errorf("not a user NKey seed (want SU…)")
	}
	return nil
}

func creds(b []byte) error {
	if jwt, err := nkeys.ParseDecoratedJWT(b); err != nil || !strings.HasPrefix(jwt, "eyJ") {
		return fmt.Errorf("no user JWT in it")
	}
	kp, err := nkeys.ParseDecoratedUserNKey(b)
	if err != nil {
		return fmt.Errorf("no user NKey seed in it")
	}
	kp.Wipe()
	return nil
}

func caBundle(b []byte) error {
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		return fmt.Errorf("no PEM certificate in it")
	}
	return nil
}

// URLHasUserinfo reports whether any of the comma-separated NATS URLs
// carries a user, password or token before the host.
func URLHasUserinfo(natsURL string) bool {
	for _, s := range List(natsURL) {
		if !strings.Contains(s, "://") {
			s = "nats://" + s
		}
		if u, err := url.Parse(s); err == nil && u.User != nil {
			return true
		}
	}
	return false
}

// String names the configured method and files, never a secret.
func (a NATSAuth) String() string {
	var parts []string
	switch {
	case a.User != "":
		parts = append(parts, "user "+a.User+" with password")
	case a.Token != "":
		parts = append(parts, "token")
	case a.NKeySeedFile != "":
		parts = append(parts, "nkey seed "+a.NKeySeedFile)
	case a.CredsFile != "":
		parts = append(parts, "creds "+a.CredsFile)
	default:
		parts = append(parts, "no credentials")
	}
	if a.TLS() {
		parts = append(parts, fmt.Sprintf("tls (ca %q, cert %q)", a.TLSCAFile, a.TLSCertFile))
	}
	return strings.Join(parts, ", ")
}

// GoString keeps %#v from printing the secrets.
func (a NATSAuth) GoString() string { return "conf.NATSAuth{" + a.String() + "}" }

// MarshalJSON keeps JSON (slog's JSON handler on a whole configuration
// included) from showing the secrets.
func (a NATSAuth) MarshalJSON() ([]byte, error) { return json.Marshal(a.String()) }

// LogValue keeps slog from printing the secrets.
func (a NATSAuth) LogValue() slog.Value { return slog.StringValue(a.String()) }
