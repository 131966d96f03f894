// Command loadgen drives a running notatcompany stack the way a busy
// organization would and measures it: it seeds contacts through the real
// paths (Dataverse webhooks and signed profile events into ingest, rows in
// the Dataverse stand-in), sends signed profile events that each flip one
// contact at fixed open-loop rates, matches each event to its write through
// the audit stream and prints the achieved rate, latency percentiles and
// CPU per event from the stack's own accounting, beside the raw-JetStream
// floor measured on the same server in the same run.
//
// With -devstack it starts a fresh devstack of its own (its own data
// directory and ports, the writer's budget off) and stops it at the end;
// otherwise it drives the stack at -http, -ops, -standin and -nats with
// the secrets in -secrets.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is the command line, checked as a whole.
type config struct {
	devstack                 string
	http, ops, standin, nats string
	secretsFile              string
	org, owner               string
	contacts, grow, fanout   int
	perAccount               int
	rates                    []int
	growRate                 int
	duration, drain          time.Duration
	floorOps, floorClients   int
	profileDir               string
	log                      string
}

func parseConfig(args []string, out io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.devstack, "devstack", "", "devstack binary to start fresh (own data dir and ports); empty: drive the stack at -http etc.")
	fs.StringVar(&c.http, "http", "http://127.0.0.1:8080", "ingest's public URL")
	fs.StringVar(&c.ops, "ops", "http://127.0.0.1:9090", "the stack's ops URL (/metrics: CPU and RSS)")
	fs.StringVar(&c.standin, "standin", "http://127.0.0.1:8081", "the Dataverse stand-in's URL")
	fs.StringVar(&c.nats, "nats", "nats://127.0.0.1:4222", "the stack's NATS URL")
	fs.StringVar(&c.secretsFile, "secrets", ".data/secrets.json", "the devstack's secrets.json (keys, NATS passwords)")
	fs.StringVar(&c.org, "org", "6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f", "organization (the devstack's demo organization has validation on)")
	fs.StringVar(&c.owner, "owner", "0c9a8b7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d", "a sync user of the organization: it owns every seeded row")
	fs.IntVar(&c.contacts, "contacts", 1000, "contacts seeded before the rates")
	fs.IntVar(&c.perAccount, "per-account", 100, "contacts per account")
	rates := fs.String("rates", "100,300,1000,2000", "flip events per second, one leg each")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "length of a leg")
	fs.DurationVar(&c.drain, "drain", 20*time.Second, "longest wait for a leg's writes after its last send")
	fs.IntVar(&c.grow, "grow", 0, "then grow to this many contacts and run -grow-rate again (0: no)")
	fs.IntVar(&c.growRate, "grow-rate", 1000, "rate of the leg at the grown size (and of the first size, for comparison)")
	fs.IntVar(&c.fanout, "fanout", 0, "then rename an account of this many contacts, each of which flips (0: no)")
	fs.IntVar(&c.floorOps, "floor-ops", 20000, "operations of each raw-JetStream floor measurement")
	fs.IntVar(&c.floorClients, "floor-clients", 16, "concurrent clients of the floor")
	fs.StringVar(&c.profileDir, "profile-dir", "", "write a CPU profile of the stack per leg here (needs the devstack's NAC_PPROF_ADDR)")
	fs.StringVar(&c.log, "devstack-log", "", "file for the started devstack's output (default: discarded)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	var errs []error
	for _, r := range strings.Split(*rates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("-rates: %q is not a positive rate", r))
			continue
		}
		c.rates = append(c.rates, n)
	}
	if c.contacts < 1 || c.perAccount < 1 {
		errs = append(errs, errors.New("-contacts and -per-account: at least 1"))
	}
	if c.grow != 0 && c.grow <= c.contacts {
		errs = append(errs, errors.New("-grow: more than -contacts, or 0"))
	}
	if c.duration <= 0 || c.drain <= 0 || c.floorOps < 1 || c.floorClients < 1 {
		errs = append(errs, errors.New("-duration, -drain, -floor-ops, -floor-clients: positive"))
	}
	return c, errors.Join(errs...)
}

func main() {
	cfg, err := parseConfig(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}
