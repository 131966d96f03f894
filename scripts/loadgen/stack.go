package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Stack is where the load goes: the addresses of a running devstack and
// its secrets.
type Stack struct {
	HTTP, Ops, Standin, NATS, Pprof string // base URLs; Pprof may be empty
	Secrets                         secrets
	stop                            func() error
}

// secrets is what the load needs of <data dir>/secrets.json.
type secrets struct {
	WebhookKey    string `json:"webhookKey"`
	ProfileSecret string `json:"profileSecret"`
	ClientSecret  string `json:"clientSecret"`
	NATS          struct {
		CLI string `json:"cli"`
	} `json:"nats"`
}

func readSecrets(path string) (secrets, error) {
	var s secrets
	b, err := os.ReadFile(path)
	if err != nil {
		return s, fmt.Errorf("read secrets: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("decode %s: %w", path, err)
	}
	if s.WebhookKey == "" || s.ProfileSecret == "" || s.ClientSecret == "" || s.NATS.CLI == "" {
		return s, fmt.Errorf("%s: webhookKey, profileSecret, clientSecret and nats.cli are all needed", path)
	}
	return s, nil
}

// freeAddr returns a loopback address nobody listens on right now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startDevstack runs a fresh devstack from binary in a data directory of
// its own, on free ports, with the writer's budget off, and waits until it
// is ready. The returned stack's stop ends that process only.
func startDevstack(ctx context.Context, binary string, extraEnv []string, logTo io.Writer) (*Stack, error) {
	dir, err := os.MkdirTemp("", "nac-bench-*")
	if err != nil {
		return nil, err
	}
	addrs := map[string]string{}
	for _, k := range []string{"NAC_HTTP_ADDR", "NAC_OPS_ADDR", "NAC_STANDIN_ADDR", "NAC_NATS_ADDR", "NAC_PPROF_ADDR"} {
		if addrs[k], err = freeAddr(); err != nil {
			return nil, err
		}
	}
	cmd := exec.CommandContext(ctx, binary)
	cmd.Env = append(os.Environ(), "NAC_DATA_DIR="+dir, "NAC_BUDGET_OFF=true", "NAC_LOG_LEVEL=warn")
	for k, v := range addrs {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, extraEnv...)
	cmd.Stdout, cmd.Stderr = logTo, logTo
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 20 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	s := &Stack{
		HTTP: "http://" + addrs["NAC_HTTP_ADDR"], Ops: "http://" + addrs["NAC_OPS_ADDR"],
		Standin: "http://" + addrs["NAC_STANDIN_ADDR"], NATS: "nats://" + addrs["NAC_NATS_ADDR"],
		Pprof: "http://" + addrs["NAC_PPROF_ADDR"],
	}
	s.stop = func() error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		err := cmd.Wait()
		_ = os.RemoveAll(dir)
		var exit *exec.ExitError
		if errors.As(err, &exit) && exit.ExitCode() == -1 {
			return nil // ended by our signal
		}
		return err
	}
	if err := waitReady(ctx, s.Ops+"/readyz", 60*time.Second); err != nil {
		_ = s.stop()
		return nil, err
	}
	if s.Secrets, err = readSecrets(filepath.Join(dir, "secrets.json")); err != nil {
		_ = s.stop()
		return nil, err
	}
	return s, nil
}

func waitReady(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %s", url, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Stop ends the devstack this load started, if it did.
func (s *Stack) Stop() error {
	if s.stop == nil {
		return nil
	}
	return s.stop()
}

// processFigures are the process's own accounting, from its /metrics.
type processFigures struct {
	CPUSeconds float64
	RSSBytes   float64
	HeapBytes  float64
}

func scrapeProcess(ctx context.Context, opsURL string) (processFigures, error) {
	var f processFigures
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, opsURL+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return f, fmt.Errorf("scrape metrics: %w", err)
	}
	defer resp.Body.Close()
	found := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		var dst *float64
		switch name {
		case "process_cpu_seconds_total":
			dst = &f.CPUSeconds
		case "process_resident_memory_bytes":
			dst = &f.RSSBytes
		case "go_memstats_heap_inuse_bytes":
			dst = &f.HeapBytes
		default:
			continue
		}
		if *dst, err = strconv.ParseFloat(value, 64); err != nil {
			return f, fmt.Errorf("metric %s: %w", name, err)
		}
		found++
	}
	if err := sc.Err(); err != nil {
		return f, fmt.Errorf("scrape metrics: %w", err)
	}
	if found < 2 {
		return f, errors.New("scrape metrics: no process_cpu_seconds_total or process_resident_memory_bytes")
	}
	return f, nil
}

// selfCPU is this process's own CPU time (user + system).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
