// Package natsembed runs a real nats-server with JetStream inside the
// process: the devstack's broker and the one every test talks to
// (testkit.NATSServer).
package natsembed

import (
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options of an embedded server.
type Options struct {
	Host     string // default 127.0.0.1
	Port     int    // -1 picks a free port
	StoreDir string // JetStream file store
	// Configure, when set, adjusts the server's options before it starts:
	// users and their permissions, a token, NKeys, operator mode, TLS.
	Configure func(*server.Options)
}

// Start runs a server and waits until it accepts connections. Shutdown it
// with Shutdown and WaitForShutdown.
func Start(o Options) (*server.Server, error) {
	if o.Host == "" {
		o.Host = "127.0.0.1"
	}
	so := &server.Options{
		ServerName: "notatcompany-embedded",
		Host:       o.Host,
		Port:       o.Port,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		NoSigs:     true,
		NoLog:      true,
	}
	if o.Configure != nil {
		o.Configure(so)
	}
	ns, err := server.NewServer(so)
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded nats-server: not ready after 10s")
	}
	return ns, nil
}
