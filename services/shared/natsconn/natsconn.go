// Package natsconn connects a service to NATS the same way everywhere:
// named, authenticated as configured, reconnecting forever, with connection
// events logged.
package natsconn

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/notatcompany/notatcompany/services/shared/conf"
)

// Connect dials url (comma-separated for a cluster) as the named client,
// with extra options (AuthOptions) added.
func Connect(url, name string, log *slog.Logger, extra ...nats.Option) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: our own drain or close
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("nats reconnected", "server", c.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Warn("nats async error", "subject", subject, "err", err)
		}),
	}
	nc, err := nats.Connect(url, append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats: %w", err)
	}
	return nc, nil
}

// ConnectCommon dials the NATS of a service's common configuration with its
// credentials.
func ConnectCommon(c conf.Common, name string, log *slog.Logger) (*nats.Conn, error) {
	auth, err := AuthOptions(c.NATSAuth)
	if err != nil {
		return nil, err
	}
	return Connect(c.NATSURL, name, log, auth...)
}

// AuthOptions turns validated credentials into nats.go's own options. The
// files are handed to nats.go, which reads them again on every reconnect
// (creds, CA, client certificate; the NKey seed to sign), so that a
// rotated secret is picked up without a restart. Userinfo in the URL needs
// no option: nats.go takes it from there.
func AuthOptions(a conf.NATSAuth) ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case a.User != "":
		opts = append(opts, nats.UserInfo(a.User, a.Password))
	case a.Token != "":
		opts = append(opts, nats.Token(a.Token))
	case a.NKeySeedFile != "":
		o, err := nats.NkeyOptionFromSeed(a.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("NAC_NATS_NKEY_SEED_FILE: %w", err)
		}
		opts = append(opts, o)
	case a.CredsFile != "":
		opts = append(opts, nats.UserCredentials(a.CredsFile))
	}
	if a.TLS() {
		// Verified against the CA (or the system's roots); there is no
		// option to skip verification or to expect another server name.
		opts = append(opts, nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12}))
		if a.TLSCAFile != "" {
			opts = append(opts, nats.RootCAs(a.TLSCAFile))
		}
		if a.TLSCertFile != "" {
			opts = append(opts, nats.ClientCert(a.TLSCertFile, a.TLSKeyFile))
		}
	}
	return opts, nil
}

// Ready is a readiness check: the connection is up.
func Ready(nc *nats.Conn) func() error {
	return func() error {
		if s := nc.Status(); s != nats.CONNECTED {
			return errors.New("nats " + s.String())
		}
		return nil
	}
}
