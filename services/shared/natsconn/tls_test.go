package natsconn_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/notatcompany/notatcompany/services/shared/conf"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

// pki is a throwaway certificate authority.
type pki struct {
	t    *testing.T
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newPKI(t *testing.T, name string) *pki {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &pki{t: t, cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a certificate and key (PEM) for a server on 127.0.0.1 or
// for a client.
func (p *pki) issue(name string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	p.t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		p.t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

// mutualTLS makes the server present a certificate of ca and require a
// client certificate ca issued.
func mutualTLS(t *testing.T, ca *pki) func(*server.Options) {
	t.Helper()
	certPEM, keyPEM := ca.issue("nats", x509.ExtKeyUsageServerAuth)
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return func(o *server.Options) {
		o.TLS, o.TLSVerify = true, true
		o.TLSConfig = &tls.Config{
			Certificates: []tls.Certificate{cert}, ClientCAs: pool,
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
		}
	}
}

func TestMutualTLS(t *testing.T) {
	ca := newPKI(t, "nac test ca")
	ns := testkit.NATSServerWith(t, mutualTLS(t, ca))
	caFile := writeFile(t, "ca.pem", ca.pem)
	certPEM, keyPEM := ca.issue("nac-writer", x509.ExtKeyUsageClientAuth)
	client := conf.NATSAuth{TLSCAFile: caFile, TLSCertFile: writeFile(t, "client.pem", certPEM), TLSKeyFile: writeFile(t, "client.key", keyPEM)}

	nc, err := dial(t, ns, client)
	if err != nil {
		t.Fatalf("client certificate of the CA: %v", err)
	}
	mustUseJetStream(t, nc)

	nc, err = dial(t, ns, conf.NATSAuth{})
	mustRefuse(t, "no TLS settings (system roots do not know the CA)", nc, err, nil)
	nc, err = dial(t, ns, conf.NATSAuth{TLSCAFile: caFile})
	mustRefuse(t, "no client certificate", nc, err, nil)

	other := newPKI(t, "another ca")
	otherCert, otherKey := other.issue("intruder", x509.ExtKeyUsageClientAuth)
	nc, err = dial(t, ns, conf.NATSAuth{TLSCAFile: caFile, TLSCertFile: writeFile(t, "o.pem", otherCert), TLSKeyFile: writeFile(t, "o.key", otherKey)})
	mustRefuse(t, "client certificate of another CA", nc, err, nil)

	// The client verifies the server: the right client certificate, but a
	// CA that did not issue the server's certificate.
	wrongCA := client
	wrongCA.TLSCAFile = writeFile(t, "other-ca.pem", other.pem)
	nc, err = dial(t, ns, wrongCA)
	mustRefuse(t, "server certificate of an untrusted CA", nc, err, nil)
}
