// Package devstack runs the whole of notatcompany in one process on the
// embedded defaults: a real nats-server with JetStream in-process, the three
// services built by their own Build functions as in production, and the
// in-memory Dataverse stand-in in place of Dynamics. It is what `make run`
// starts.
package devstack

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/notatcompany/notatcompany/services/ingest"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
	"github.com/notatcompany/notatcompany/services/shared/httpserver"
	"github.com/notatcompany/notatcompany/services/shared/lifecycle"
	"github.com/notatcompany/notatcompany/services/shared/logging"
	"github.com/notatcompany/notatcompany/services/shared/natsembed"
	"github.com/notatcompany/notatcompany/services/validator"
	"github.com/notatcompany/notatcompany/services/writer"
)

// Stack is a running devstack.
type Stack struct {
	Secrets    Secrets
	HTTPURL    string
	OpsURL     string
	StandinURL string
	NATSURL    string
	Standin    *dataversetest.Server
	// Process serves every part; Run runs it.
	Process *lifecycle.Process

	log     *slog.Logger
	dataDir string
	// provisioned is set once the stand-in is provisioned (provision.go).
	provisioned atomic.Bool
}

// ClientID is the stand-in's application user.
const ClientID = "notatcompany-devstack"

// Open starts the broker and the stand-in, then builds the services in one
// lifecycle process (ingest, the validator, the writer replicas, and the
// stand-in's provisioning), every address bound; Run then serves.
func Open(ctx context.Context, cfg Config, getenv func(string) string, stdout io.Writer) (_ *Stack, err error) {
	log, err := logging.New(stdout, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return nil, err
	}
	s := &Stack{log: log, dataDir: cfg.DataDir}
	lab := labeler{on: cfg.PprofAddr != ""}
	// The stand-in and the broker go last: in-flight writes need them. They
	// are the devstack's own part of the process; until it is built, a
	// failure releases them here.
	var own lifecycle.Parts
	owned := false
	defer func() {
		if err != nil && !owned {
			for _, srv := range own.Backing {
				_ = srv.Close()
			}
			for _, f := range own.OnStopped {
				f()
			}
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	unlock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	own.OnStopped = append(own.OnStopped, unlock)
	if s.Secrets, err = loadSecrets(filepath.Join(cfg.DataDir, "secrets.json"), getenv); err != nil {
		return nil, err
	}

	host, portStr, _ := net.SplitHostPort(cfg.NATSAddr)
	port, _ := strconv.Atoi(portStr)
	users := natsUsers(s.Secrets.NATS)
	var ns *server.Server
	lab.do("nats-server", func() {
		ns, err = natsembed.Start(natsembed.Options{Host: host, Port: port, StoreDir: filepath.Join(cfg.DataDir, "jetstream"),
			Configure: func(o *server.Options) { o.Users = users }})
	})
	if err != nil {
		return nil, err
	}
	// The broker stops before the data directory is unlocked.
	own.OnStopped = slices.Insert(own.OnStopped, 0, func() { ns.Shutdown(); ns.WaitForShutdown() })
	s.NATSURL = ns.ClientURL()

	// Write-through: a row the stand-in answered as written is on disk,
	// whatever way the devstack stops.
	journal, rows, err := dataversetest.OpenJournal(filepath.Join(cfg.DataDir, "dataverse-standin.journal"))
	if err != nil {
		return nil, err
	}
	// The journal closes before the broker stops.
	own.OnStopped = slices.Insert(own.OnStopped, 0, func() {
		if err := journal.Close(); err != nil {
			log.Error("closing the stand-in's journal failed", "err", err)
		}
	})
	missingRows := prometheus.NewCounter(prometheus.CounterOpts{Name: "nac_standin_missing_row_patches_total",
		Help: "PATCHes the Dataverse stand-in answered 404 because it holds no such row (the writer records them obsolete)."})
	s.Standin = dataversetest.New(dataversetest.Options{ClientID: ClientID, ClientSecret: s.Secrets.ClientSecret, AnonymousReads: true,
		OnChange: journal.Append, Durable: journal.Sync, OnMissingRow: func(set, id string) {
			missingRows.Inc()
			log.Warn("the Dataverse stand-in refused a PATCH: it holds no such row", "service", "dataverse-standin", "entity_set", set, "id", id)
		}})
	s.Standin.SetIdentity(dataversetest.Identity{OrganizationID: DemoOrganizationID, OrganizationName: "devstack"})
	s.Standin.Restore(rows)
	for _, r := range DemoRows {
		if _, ok := s.Standin.Row(r.EntitySet, r.ID); !ok {
			s.Standin.Seed(r.EntitySet, r.ID, r.Columns)
		}
	}
	standinSrv, err := httpserver.Listen(cfg.StandinAddr, lab.handler("standin", s.Standin.Handler()))
	if err != nil {
		return nil, err
	}
	own.Backing = []*httpserver.Server{standinSrv}
	if cfg.PprofAddr != "" {
		pprofSrv, err := pprofServer(cfg.PprofAddr, ns)
		if err != nil {
			_ = standinSrv.Close()
			return nil, err
		}
		own.Backing = append(own.Backing, pprofSrv)
	}
	s.StandinURL = "http://" + standinSrv.Addr()

	env := s.serviceEnv(cfg, getenv)
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

	services := []lifecycle.Service{
		{Name: "dataverse-standin", Build: func(_ context.Context, env lifecycle.Env) (lifecycle.Parts, error) {
			owned = true // from here on, lifecycle.Start releases it on a failure
			return own, env.Registerer.Register(missingRows)
		}},
		{Name: "ingest", Common: ingestCfg.Common, Around: lab.around("ingest"), Build: func(ctx context.Context, env lifecycle.Env) (lifecycle.Parts, error) {
			if err := seedAdmin(ctx, bus.NewPublisher(env.JS, ingestCfg.PublishTimeout)); err != nil {
				return lifecycle.Parts{}, err
			}
			parts, err := ingest.Build(ctx, ingestCfg, env)
			if err == nil {
				s.HTTPURL = "http://" + parts.Public[0].Addr()
				parts.Public[0].Wrap(func(h http.Handler) http.Handler { return lab.handler("ingest", h) })
			}
			return parts, err
		}},
		{Name: "validator", Common: validatorCfg.Common, Around: lab.around("validator"), Build: func(ctx context.Context, env lifecycle.Env) (lifecycle.Parts, error) {
			return lab.parts("validator")(validator.Build(ctx, validatorCfg, env))
		}},
	}
	// Writer replicas share the consumer, the leases and the budget, as
	// the pods of a deployment do; each has its own connection.
	for i := range cfg.WriterReplicas {
		services = append(services, lifecycle.Service{Name: "writer", Replica: i, Common: writerCfg.Common, Around: lab.around("writer"),
			Build: func(ctx context.Context, env lifecycle.Env) (lifecycle.Parts, error) {
				return lab.parts("writer")(writer.Build(ctx, writerCfg, env))
			}})
	}
	services = append(services, lifecycle.Service{Name: "provision", Build: s.provisionStandin(validatorCfg.Columns())})

	if s.Process, err = lifecycle.Start(ctx, lifecycle.Options{Log: log, OpsAddr: cfg.OpsAddr, ShutdownTimeout: ingestCfg.ShutdownTimeout},
		services...); err != nil {
		return nil, err
	}
	s.OpsURL = "http://" + s.Process.OpsAddr()
	return s, nil
}

// serviceEnv returns, per NATS user, a service's environment in the
// devstack: each service gets its configuration through its own parser,
// with the embedded parts filled in, the same code path as a real
// deployment.
func (s *Stack) serviceEnv(cfg Config, getenv func(string) string) func(user, password string) func(string) string {
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
		"NAC_HTTP_ADDR":               cfg.HTTPAddr,
	}
	return func(user, password string) func(string) string {
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
}

// Run serves until ctx ends, then shuts everything down in order.
func (s *Stack) Run(ctx context.Context) error { return s.Process.Run(ctx) }

// Banner tells a person where everything is.
func (s *Stack) Banner(w io.Writer) {
	fmt.Fprintf(w, `
notatcompany devstack is running
  public API             %[1]s   POST /webhooks/dataverse?code=<key>, POST /webhooks/profile, /admin/...
  admin console          %[1]s/console/   (log in with NAC_ADMIN_TOKEN)
  ops                    %[2]s   /healthz /readyz /metrics
  Dataverse stand-in     %[3]s/api/data/v9.2   OAuth2 token: %[3]s%[11]s
                         client id %[12]s, client secret %[13]s
  NATS JetStream         %[4]s   user %[9]s (each service has its own user)
  data                   %[5]s

  NAC_DATAVERSE_WEBHOOK_KEY=%[6]s
  NAC_PROFILE_SECRET=%[7]s
  NAC_ADMIN_TOKEN=%[8]s
  nats context save nac-devstack --server %[4]s --user %[9]s --password %[10]s

`, s.HTTPURL, s.OpsURL, s.StandinURL, s.NATSURL, s.dataDir, s.Secrets.WebhookKey, s.Secrets.ProfileSecret, s.Secrets.AdminToken,
		NATSUserCLI, s.Secrets.NATS.CLI, dataversetest.TokenPath, ClientID, s.Secrets.ClientSecret)
}
