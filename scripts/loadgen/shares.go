package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/google/pprof/profile"
)

// CPU by service: the devstack labels each part's work ("service" =
// nats-server, ingest, validator, writer, standin); a leg's CPU profile
// splits its CPU per flip among them. What runs under no label is the Go
// runtime's own (garbage collection, the scheduler).

// serviceShares returns each label's share of the profile's CPU.
func serviceShares(path string) (map[string]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("CPU profile %s: %w", path, err)
	}
	idx := len(p.SampleType) - 1 // cpu nanoseconds
	by := map[string]int64{}
	var total int64
	for _, s := range p.Sample {
		name := "runtime (no service)"
		if v := s.Label["service"]; len(v) > 0 {
			name = v[0]
		}
		by[name] += s.Value[idx]
		total += s.Value[idx]
	}
	out := map[string]float64{}
	for k, v := range by {
		if total > 0 {
			out[k] = float64(v) / float64(total)
		}
	}
	return out, nil
}

// printShares prints a leg's CPU per flip by service, and without the
// Dataverse stand-in (which plays Dynamics, not part of the product).
func printShares(out io.Writer, name string, shares map[string]float64, r legResult) {
	if len(shares) == 0 || r.CPUPerEvent == 0 {
		return
	}
	names := make([]string, 0, len(shares))
	for k := range shares {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return shares[names[i]] > shares[names[j]] })
	perFlip := float64(r.CPUPerEvent.Microseconds()) / 1000
	var parts []string
	for _, k := range names {
		parts = append(parts, fmt.Sprintf("%s %.3f", k, perFlip*shares[k]))
	}
	fmt.Fprintf(out, "CPU ms per flip, %s: %s; without the stand-in %.3f\n", name, strings.Join(parts, ", "), perFlip*(1-shares["standin"]))
}
