package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// run measures the stack as cfg says and prints the table to out.
func run(ctx context.Context, cfg config, out io.Writer) (err error) {
	stack, err := openStack(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() {
		if serr := stack.Stop(); serr != nil && err == nil {
			err = fmt.Errorf("stop the devstack: %w", serr)
		}
	}()
	nc, err := nats.Connect(stack.NATS, nats.UserInfo("nac-cli", stack.Secrets.NATS.CLI), nats.Name("nac-loadgen"))
	if err != nil {
		return fmt.Errorf("connect to NATS: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "stack: %s (NATS %s)\n", stack.HTTP, stack.NATS)

	fl, err := measureFloor(ctx, js, stack.Ops, cfg.floorOps, cfg.floorClients)
	if err != nil {
		return err
	}
	printFloor(out, fl)

	pop := population{org: cfg.org, owner: cfg.owner, run: runID(time.Now())}
	c := newClient(stack, pop)
	a, err := watchAudit(nc, pop)
	if err != nil {
		return err
	}
	defer func() { _ = a.sub.Unsubscribe() }()
	idle := func(ctx context.Context) error { return waitIdle(ctx, js, 10*time.Minute) }
	accountOf := func(i int) int { return i / cfg.perAccount }

	t0 := time.Now()
	if err := c.seed(ctx, 0, cfg.contacts, cfg.perAccount, accountOf, idle); err != nil {
		return err
	}
	fmt.Fprintf(out, "seeded %d contacts in %.1fs\n\n", cfg.contacts, time.Since(t0).Seconds())

	l := newLoader(c, a, cfg.contacts)
	var legs []legResult
	for _, rate := range cfg.rates {
		res, err := profiled(ctx, out, stack, cfg, fmt.Sprintf("rate-%d-contacts-%d", rate, cfg.contacts), func() (legResult, error) {
			return l.leg(ctx, rate, cfg.duration, cfg.drain)
		})
		if err != nil {
			return err
		}
		legs = append(legs, res)
		if err := idle(ctx); err != nil {
			return err
		}
	}
	if cfg.grow > 0 {
		t0 := time.Now()
		if err := c.seed(ctx, cfg.contacts, cfg.grow, cfg.perAccount, accountOf, idle); err != nil {
			return err
		}
		fmt.Fprintf(out, "grew to %d contacts in %.1fs\n", cfg.grow, time.Since(t0).Seconds())
		grown := l.grown(cfg.grow)
		res, err := profiled(ctx, out, stack, cfg, fmt.Sprintf("rate-%d-contacts-%d", cfg.growRate, cfg.grow), func() (legResult, error) {
			return grown.leg(ctx, cfg.growRate, cfg.duration, cfg.drain)
		})
		if err != nil {
			return err
		}
		legs = append(legs, res)
		if err := idle(ctx); err != nil {
			return err
		}
	}
	printLegs(out, legs, fl)

	total := cfg.contacts
	if cfg.grow > 0 {
		total = cfg.grow
	}
	if cfg.fanout > 0 {
		if err := fanout(ctx, out, c, a, total, cfg.fanout, idle); err != nil {
			return err
		}
		total += cfg.fanout
	}
	return printKV(ctx, out, js, total)
}

func openStack(ctx context.Context, cfg config) (*Stack, error) {
	if cfg.devstack != "" {
		logTo := io.Discard
		if cfg.log != "" {
			f, err := os.Create(cfg.log)
			if err != nil {
				return nil, err
			}
			logTo = f
		}
		return startDevstack(ctx, cfg.devstack, nil, logTo)
	}
	sec, err := readSecrets(cfg.secretsFile)
	if err != nil {
		return nil, err
	}
	return &Stack{HTTP: cfg.http, Ops: cfg.ops, Standin: cfg.standin, NATS: cfg.nats, Secrets: sec}, nil
}

// profiled runs leg while the stack's CPU profile is taken, when asked.
func profiled(ctx context.Context, out io.Writer, stack *Stack, cfg config, name string, leg func() (legResult, error)) (legResult, error) {
	if cfg.profileDir == "" || stack.Pprof == "" {
		return leg()
	}
	before, _ := fetchConnz(ctx, stack.Pprof) // nil: a stack without it
	done := make(chan error, 1)
	go func() {
		done <- fetchProfile(ctx, stack.Pprof, cfg.duration, filepath.Join(cfg.profileDir, name+".pprof"))
	}()
	res, err := leg()
	if perr := <-done; perr != nil && err == nil {
		err = perr
	}
	if before != nil && err == nil {
		if after, cerr := fetchConnz(ctx, stack.Pprof); cerr == nil {
			printConnz(out, name, before, after, res.Matched)
		}
	}
	if err == nil {
		shares, serr := serviceShares(filepath.Join(cfg.profileDir, name+".pprof"))
		if serr != nil {
			return res, serr
		}
		res.Shares = shares
		printShares(out, name, shares, res)
	}
	return res, err
}

func fetchProfile(ctx context.Context, base string, d time.Duration, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, max(1, int(d.Seconds())))
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("CPU profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("CPU profile: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// waitIdle waits until every consumer of the stack has nothing pending or
// unacknowledged, twice in a row.
func waitIdle(ctx context.Context, js jetstream.JetStream, timeout time.Duration) error {
	consumers := [][2]string{{"NAC_CRM", "validator-crm"}, {"NAC_PROFILE", "validator-profile"}, {"NAC_ADMIN", "validator-admin"},
		{"NAC_WORK", "validator-work"}, {"NAC_DECISIONS", "writer"}}
	deadline := time.Now().Add(timeout)
	quiet := 0
	for quiet < 2 {
		busy := false
		for _, c := range consumers {
			cons, err := js.Consumer(ctx, c[0], c[1])
			if err != nil {
				return fmt.Errorf("consumer %s: %w", c[1], err)
			}
			info, err := cons.Info(ctx)
			if err != nil {
				return fmt.Errorf("consumer %s: %w", c[1], err)
			}
			busy = busy || info.NumPending > 0 || info.NumAckPending > 0
		}
		if busy {
			quiet = 0
		} else {
			quiet++
		}
		if time.Now().After(deadline) {
			return errors.New("the stack is still busy after " + timeout.String())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

// fanout seeds n contacts under one account of their own, whose members are
// at the company, renames the account to the company they are not at (all
// n flip), and measures from the rename's 202 to the last write; then
// renames it back (all n flip back) and measures that too.
func fanout(ctx context.Context, out io.Writer, c *client, a *audit, from, n int, idle func(context.Context) error) error {
	account := 1_000_000 // an account no other contact is under
	if err := c.seed(ctx, from, from+n, n, func(int) int { return account }, idle); err != nil {
		return err
	}
	fmt.Fprintf(out, "\nfan-out: one account of %d contacts renamed (every contact flips)\n", n)
	for i, name := range []string{companyThere, companyHere} {
		written := a.written.Load()
		body, err := c.pop.accountWebhook(account, name, i+1, time.Now())
		if err != nil {
			return err
		}
		start := time.Now()
		if err := c.dataverse(ctx, body); err != nil {
			return err
		}
		accepted := time.Since(start)
		deadline := time.Now().Add(5 * time.Minute)
		for a.written.Load()-written < int64(n) && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(2 * time.Millisecond)
		}
		got := a.written.Load() - written
		elapsed := time.Since(start)
		fmt.Fprintf(out, "  rename to %-15q %6d writes in %6.2fs (202 after %s)  %7.0f writes/s\n", name, got, elapsed.Seconds(),
			accepted.Round(time.Millisecond), float64(got)/elapsed.Seconds())
		if err := idle(ctx); err != nil {
			return err
		}
	}
	return nil
}

// printKV reports the bytes the state buckets hold, per contact.
func printKV(ctx context.Context, out io.Writer, js jetstream.JetStream, contacts int) error {
	fmt.Fprintf(out, "\nKV bytes per contact (%d contacts, every state bucket):\n", contacts)
	var total uint64
	names := js.StreamNames(ctx)
	var kvs []string
	for name := range names.Name() {
		if strings.HasPrefix(name, "KV_nac_") {
			kvs = append(kvs, name)
		}
	}
	if err := names.Err(); err != nil {
		return err
	}
	for _, name := range kvs {
		s, err := js.Stream(ctx, name)
		if err != nil {
			return err
		}
		info, err := s.Info(ctx)
		if err != nil {
			return err
		}
		total += info.State.Bytes
		fmt.Fprintf(out, "  %-18s %8d keys %10d bytes %8.1f B/contact\n", strings.TrimPrefix(name, "KV_"), info.State.Msgs,
			info.State.Bytes, float64(info.State.Bytes)/float64(contacts))
	}
	fmt.Fprintf(out, "  %-18s %19s %10d bytes %8.1f B/contact\n", "all", "", total, float64(total)/float64(contacts))
	return nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) }

func printFloor(out io.Writer, f floor) {
	fmt.Fprintf(out, "raw JetStream floor on this server (%d clients, %d-byte payloads, client and server CPU):\n", f.Publish.Clients, floorPayload)
	for _, o := range []struct {
		name string
		c    opCost
	}{{"publish+ack", f.Publish}, {"KV get", f.Get}, {"delivery+ack", f.Deliver}} {
		fmt.Fprintf(out, "  %-13s %8.0f ops/s  %6.1f µs CPU/op\n", o.name, o.c.PerSec, float64(o.c.CPUPer.Nanoseconds())/1000)
	}
	fmt.Fprintf(out, "  a flip's least: %d publishes + %d gets + %d deliveries = %s ms CPU\n\n", floorPublishes, floorGets, floorDeliveries,
		fmt.Sprintf("%.3f", float64(f.PerFlip().Microseconds())/1000))
}

func printLegs(out io.Writer, legs []legResult, f floor) {
	fmt.Fprintln(out, "| contacts | rate/s | achieved/s | p50 ms | p95 ms | p99 ms | max ms | decided p50 | 202 p50 | CPU ms/flip | stand-in aside | × floor | unsent or lost | RSS MiB |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range legs {
		cpu := float64(r.CPUPerEvent.Microseconds()) / 1000
		// The stand-in's share comes from the leg's profile; without one,
		// the ratio is of all of it.
		product, aside := cpu, "-"
		if r.Shares != nil {
			product = cpu * (1 - r.Shares["standin"])
			aside = fmt.Sprintf("%.3f", product)
		}
		ratio := 0.0
		if f.PerFlip() > 0 {
			ratio = product / (float64(f.PerFlip().Microseconds()) / 1000)
		}
		fmt.Fprintf(out, "| %d | %d | %.0f | %s | %s | %s | %s | %s | %s | %.3f | %s | %.1f | %d | %.0f |\n",
			r.Contacts, r.Rate, r.Achieved, ms(r.P50), ms(r.P95), ms(r.P99), ms(r.Max), ms(r.DecideP50), ms(r.AcceptP50),
			cpu, aside, ratio, r.Lost+r.NoFreeContact, r.RSS/(1<<20))
	}
}
