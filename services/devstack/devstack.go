// Package devstack runs the whole of notatcompany in one process on the
// embedded defaults: a real nats-server with JetStream in-process, the three
// services wired exactly as in production, and the in-memory Dataverse
// stand-in in place of Dynamics. It is what `make run` starts.
package devstack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/notatcompany/notatcompany/services/ingest"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/conf"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
	"github.com/notatcompany/notatcompany/services/shared/httpserver"
	"github.com/notatcompany/notatcompany/services/shared/lifecycle"
	"github.com/notatcompany/notatcompany/services/shared/logging"
	"github.com/notatcompany/notatcompany/services/shared/natsconn"
	"github.com/notatcompany/notatcompany/services/shared/natsembed"
	"github.com/notatcompany/notatcompany/services/shared/ops"
	"github.com/notatcompany/notatcompany/services/shared/orgs"
	"github.com/notatcompany/notatcompany/services/shared/syncjobs"
	"github.com/notatcompany/notatcompany/services/validator"
	"github.com/notatcompany/notatcompany/services/writer"
)

// Config of the devstack.
type Config struct {
	DataDir     string
	HTTPAddr    string
	OpsAddr     string
	StandinAddr string
	NATSAddr    string
	LogFormat   string
	LogLevel    string
	// WriterReplicas is how many writers run, each with its own connection,
	// as replicas of a deployment do.
	WriterReplicas int
	// PprofAddr, when set, serves net/http/pprof (see profiling.go).
	PprofAddr string
}

// ParseConfig reads the devstack's own settings.
func ParseConfig(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	var c Config
	p := conf.NewParser("devstack", getenv, out)
	p.String(&c.DataDir, "data-dir", "NAC_DATA_DIR", ".data", "where JetStream and the stand-in keep their data")
	p.String(&c.HTTPAddr, "http-addr", "NAC_HTTP_ADDR", "127.0.0.1:8080", "public API: webhooks and admin")
	p.String(&c.OpsAddr, "ops-addr", "NAC_OPS_ADDR", "127.0.0.1:9090", "/healthz, /readyz and /metrics of the whole stack")
	p.String(&c.StandinAddr, "standin-addr", "NAC_STANDIN_ADDR", "127.0.0.1:8081", "the Dataverse Web API stand-in")
	p.String(&c.NATSAddr, "nats-addr", "NAC_NATS_ADDR", "127.0.0.1:4222", "the embedded NATS server's client address")
	p.String(&c.LogFormat, "log-format", "NAC_LOG_FORMAT", "text", "log format: json or text")
	p.String(&c.LogLevel, "log-level", "NAC_LOG_LEVEL", "info", "log level")
	p.Int(&c.WriterReplicas, "writer-replicas", "NAC_WRITER_REPLICAS", 2, "writer replicas, 1-8")
	p.String(&c.PprofAddr, "pprof-addr", "NAC_PPROF_ADDR", "", "serve net/http/pprof here, with each service's work labelled (benchmarks; empty: off)")
	if err := p.Parse(args); err != nil {
		return c, err
	}
	_, port, err := net.SplitHostPort(c.NATSAddr)
	_, perr := strconv.Atoi(port)
	p.Check(err == nil && perr == nil, "NAC_NATS_ADDR=%q: want host:port", c.NATSAddr)
	p.Check(c.DataDir != "", "NAC_DATA_DIR: required")
	p.Check(c.WriterReplicas >= 1 && c.WriterReplicas <= 8, "NAC_WRITER_REPLICAS=%d: want 1-8", c.WriterReplicas)
	return c, p.Err()
}

// Secrets the devstack generates once and keeps in its data directory, so
// that a restart finds the same keys (and a configured webhook keeps working).
type Secrets struct {
	WebhookKey    string `json:"webhookKey"`
	ProfileSecret string `json:"profileSecret"`
	ClientSecret  string `json:"clientSecret"`
	AdminToken    string `json:"adminToken"`
	// NATS are the embedded server's passwords.
	NATS NATSPasswords `json:"nats"`
}

// Stack is a running devstack.
type Stack struct {
	Secrets    Secrets
	HTTPURL    string
	OpsURL     string
	StandinURL string
	NATSURL    string
	Standin    *dataversetest.Server

	log      *slog.Logger
	pprof    *httpserver.Server
	ns       *server.Server
	spec     lifecycle.Spec
	dataDir  string
	standinS *httpserver.Server
	// provisioned is set once the stand-in is provisioned (provision.go).
	provisioned atomic.Bool
	journal     *dataversetest.Journal
}

// ClientID is the stand-in's application user.
const ClientID = "notatcompany-devstack"

// Open starts the broker and binds every address; Run then serves.
func Open(ctx context.Context, cfg Config, getenv func(string) string, stdout io.Writer) (_ *Stack, err error) {
	log, err := logging.New(stdout, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return nil, err
	}
	s := &Stack{log: log, dataDir: cfg.DataDir}
	lab := labeler{on: cfg.PprofAddr != ""}
	var cleanup []func()
	defer func() {
		if err != nil {
			for i := len(cleanup) - 1; i >= 0; i-- {
				cleanup[i]()
			}
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if s.Secrets, err = loadSecrets(filepath.Join(cfg.DataDir, "secrets.json"), getenv); err != nil {
		return nil, err
	}

	host, portStr, _ := net.SplitHostPort(cfg.NATSAddr)
	port, _ := strconv.Atoi(portStr)
	users := natsUsers(s.Secrets.NATS)
	lab.do("nats-server", func() {
		s.ns, err = natsembed.Start(natsembed.Options{Host: host, Port: port, StoreDir: filepath.Join(cfg.DataDir, "jetstream"),
			Configure: func(o *server.Options) { o.Users = users }})
	})
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { s.ns.Shutdown(); s.ns.WaitForShutdown() })
	s.NATSURL = s.ns.ClientURL()

	// Write-through: a row the stand-in answered as written is on disk,
	// whatever way the devstack stops.
	journal, rows, err := dataversetest.OpenJournal(s.standinFile())
	if err != nil {
		return nil, err
	}
	s.journal = journal
	cleanup = append(cleanup, func() { _ = journal.Close() })
	s.Standin = dataversetest.New(dataversetest.Options{ClientID: ClientID, ClientSecret: s.Secrets.ClientSecret, AnonymousReads: true,
		OnChange: journal.Append})
	s.Standin.SetIdentity(dataversetest.Identity{OrganizationID: DemoOrganizationID, OrganizationName: "devstack"})
	s.Standin.Restore(rows)
	for _, r := range DemoRows {
		if _, ok := s.Standin.Row(r.EntitySet, r.ID); !ok {
			s.Standin.Seed(r.EntitySet, r.ID, r.Columns)
		}
	}
	if s.standinS, err = httpserver.Listen(cfg.StandinAddr, lab.handler("standin", s.Standin.Handler())); err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { _ = s.standinS.Shutdown(context.Background()) })
	s.StandinURL = "http://" + s.standinS.Addr()

	// Each service gets its configuration through its own parser, with the
	// embedded parts filled in: the same code path as a real deployment.
	fixed := map[string]string{
		"NAC_DATAVERSE_WEBHOOK_KEY":   s.Secrets.WebhookKey,
		"NAC_PROFILE_SECRET":          s.Secrets.ProfileSecret,
		"NAC_ADMIN_TOKEN":             s.Secrets.AdminToken,
		"NAC_DATAVERSE_URL":           s.StandinURL,
		"NAC_DATAVERSE_TOKEN_URL":     s.StandinURL + dataversetest.TokenPath,
		"NAC_DATAVERSE_CLIENT_ID":     ClientID,
		"NAC_DATAVERSE_CLIENT_SECRET": s.Secrets.ClientSecret,
		"NAC_LOG_FORMAT":              cfg.LogFormat,
		"NAC_LOG_LEVEL":               cfg.LogLevel,
	}
	env := func(user, password string) func(string) string {
		nats := natsEnv(s.NATSURL, user, password)
		return func(k string) string {
			if v, ok := nats[k]; ok {
				return v
			}
			if v, ok := fixed[k]; ok {
				return v
			}
			return getenv(k)
		}
	}
	pw := s.Secrets.NATS
	ingestCfg, err := ingest.ParseConfig(nil, env(NATSUserIngest, pw.Ingest), stdout)
	if err != nil {
		return nil, err
	}
	validatorCfg, err := validator.ParseConfig(nil, env(NATSUserValidator, pw.Validator), stdout)
	if err != nil {
		return nil, err
	}
	writerCfg, err := writer.ParseConfig(nil, env(NATSUserWriter, pw.Writer), stdout)
	if err != nil {
		return nil, err
	}

	reg := ops.NewRegistry()
	ready := &ops.Readiness{}
	connect := func(name string, c conf.Common) (*nats.Conn, jetstream.JetStream, error) {
		var nc *nats.Conn
		var err error
		lab.do(name, func() { nc, err = natsconn.ConnectCommon(c, "nac-"+name, log.With("service", name)) })
		if err != nil {
			return nil, nil, err
		}
		cleanup = append(cleanup, nc.Close)
		ready.Add(name+" nats", natsconn.Ready(nc))
		js, err := jetstream.New(nc)
		return nc, js, err
	}
	// Every metric has the same labels, so that the writer replicas'
	// series can sit beside the others in one registry.
	labelled := func(name string, replica int) prometheus.Registerer {
		return prometheus.WrapRegistererWith(prometheus.Labels{lifecycle.ServiceLabel: name, "replica": strconv.Itoa(replica)}, reg)
	}

	ingestNC, ingestJS, err := connect("ingest", ingestCfg.Common)
	if err != nil {
		return nil, err
	}
	topo := bus.DefaultOptions()
	if err := bus.Declare(ctx, ingestJS, topo); err != nil {
		return nil, err
	}
	if err := seedAdmin(ctx, bus.NewPublisher(ingestJS, ingestCfg.PublishTimeout)); err != nil {
		return nil, err
	}
	adminReader, err := orgs.NewReader(ctx, ingestJS)
	if err != nil {
		return nil, err
	}
	jobsReader, err := syncjobs.NewReader(ctx, ingestJS)
	if err != nil {
		return nil, err
	}
	ingestSvc := ingest.New(ingestCfg, bus.NewPublisher(ingestJS, ingestCfg.PublishTimeout), log.With("service", "ingest"),
		labelled("ingest", 0), ingest.WithAdmin(adminReader), ingest.WithSyncStatus(jobsReader))

	validatorNC, validatorJS, err := connect("validator", validatorCfg.Common)
	if err != nil {
		return nil, err
	}
	validatorWork, err := validator.Workers(ctx, validatorCfg, validatorJS, log.With("service", "validator"), labelled("validator", 0))
	if err != nil {
		return nil, err
	}
	// Writer replicas share the consumer, the leases and the budget, as
	// the pods of a deployment do; each has its own connection.
	var writerWork []func(context.Context) error
	var writerConns []*nats.Conn
	for i := range cfg.WriterReplicas {
		name := fmt.Sprintf("writer-%d", i)
		nc, js, err := connect(name, writerCfg.Common)
		if err != nil {
			return nil, err
		}
		work, err := writer.Workers(ctx, writerCfg, topo, js, log.With("service", "writer", "replica", i),
			labelled("writer", i))
		if err != nil {
			return nil, err
		}
		writerWork, writerConns = append(writerWork, work...), append(writerConns, nc)
	}

	opsSrv, err := httpserver.Listen(cfg.OpsAddr, ops.Handler(ready, reg))
	if err != nil {
		return nil, err
	}
	cleanup = append(cleanup, func() { _ = opsSrv.Shutdown(context.Background()) })
	public, err := httpserver.Listen(cfg.HTTPAddr, lab.handler("ingest", ingestSvc.Routes()))
	if err != nil {
		return nil, err
	}
	s.HTTPURL, s.OpsURL = "http://"+public.Addr(), "http://"+opsSrv.Addr()
	if cfg.PprofAddr != "" {
		if s.pprof, err = pprofServer(cfg.PprofAddr); err != nil {
			return nil, err
		}
		cleanup = append(cleanup, func() { _ = s.pprof.Shutdown(context.Background()) })
	}
	var workers []func(context.Context) error
	for _, w := range validatorWork {
		workers = append(workers, lab.worker("validator", w))
	}
	for _, w := range writerWork {
		workers = append(workers, lab.worker("writer", w))
	}
	s.spec = lifecycle.Spec{
		Log: log, Ready: ready, ShutdownTimeout: ingestCfg.ShutdownTimeout,
		Ops: opsSrv, Public: []*httpserver.Server{public},
		Workers: append(workers, s.provisionStandin(validatorCfg.Columns(), ready)),
		Conns:   append([]*nats.Conn{ingestNC, validatorNC}, writerConns...),
		// The stand-in and the broker go last: in-flight writes need them.
		OnStopped: []func(){s.stopPprof, s.stopStandin, func() { s.ns.Shutdown(); s.ns.WaitForShutdown() }},
	}
	return s, nil
}

// Run serves until ctx ends, then shuts everything down in order.
func (s *Stack) Run(ctx context.Context) error {
	go func() {
		if err := s.standinS.Serve(); err != nil {
			s.log.Error("dataverse stand-in stopped", "err", err)
		}
	}()
	if s.pprof != nil {
		go func() {
			if err := s.pprof.Serve(); err != nil {
				s.log.Error("pprof server stopped", "err", err)
			}
		}()
	}
	return lifecycle.Run(ctx, s.spec)
}

// Banner tells a person where everything is.
func (s *Stack) Banner(w io.Writer) {
	fmt.Fprintf(w, `
notatcompany devstack is running
  public API             %[1]s   POST /webhooks/dataverse?code=<key>, POST /webhooks/profile, /admin/...
  ops                    %[2]s   /healthz /readyz /metrics
  Dataverse stand-in     %[3]s/api/data/v9.2
  NATS JetStream         %[4]s   user %[9]s (each service has its own user)
  data                   %[5]s

  NAC_DATAVERSE_WEBHOOK_KEY=%[6]s
  NAC_PROFILE_SECRET=%[7]s
  NAC_ADMIN_TOKEN=%[8]s
  nats context save nac-devstack --server %[4]s --user %[9]s --password %[10]s

`, s.HTTPURL, s.OpsURL, s.StandinURL, s.NATSURL, s.dataDir, s.Secrets.WebhookKey, s.Secrets.ProfileSecret, s.Secrets.AdminToken,
		NATSUserCLI, s.Secrets.NATS.CLI)
}

func (s *Stack) stopPprof() {
	if s.pprof != nil {
		_ = s.pprof.Shutdown(context.Background())
	}
}

func (s *Stack) stopStandin() {
	_ = s.standinS.Shutdown(context.Background())
	if err := s.journal.Close(); err != nil {
		s.log.Error("closing the stand-in's journal failed", "err", err)
	}
}

// standinFile is the stand-in's journal: every row change, synced before
// it is answered.
func (s *Stack) standinFile() string { return filepath.Join(s.dataDir, "dataverse-standin.journal") }

// loadSecrets takes secrets from the environment, else from path, else
// generates them and writes path (mode 0600).
func loadSecrets(path string, getenv func(string) string) (Secrets, error) {
	var sec Secrets
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return sec, fmt.Errorf("read secrets: %w", err)
	default:
		if err := json.Unmarshal(b, &sec); err != nil {
			return sec, fmt.Errorf("decode %s: %w", path, err)
		}
	}
	stored := sec
	for _, f := range []struct {
		dst *string
		env string
	}{
		{&sec.WebhookKey, "NAC_DATAVERSE_WEBHOOK_KEY"},
		{&sec.ProfileSecret, "NAC_PROFILE_SECRET"},
		{&sec.ClientSecret, ""},
		{&sec.AdminToken, "NAC_ADMIN_TOKEN"},
		{&sec.NATS.Ingest, ""},
		{&sec.NATS.Validator, ""},
		{&sec.NATS.Writer, ""},
		{&sec.NATS.CLI, ""},
	} {
		if f.env != "" && getenv(f.env) != "" {
			*f.dst = getenv(f.env)
			continue
		}
		if *f.dst == "" {
			*f.dst = randomHex(24)
		}
	}
	if sec != stored {
		b, _ := json.MarshalIndent(sec, "", "  ")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return sec, fmt.Errorf("write secrets: %w", err)
		}
	}
	return sec, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
