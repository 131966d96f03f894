package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
)

// NATS messages per flip by connection: the devstack's diagnostic server
// serves the broker's /connz, whose counts before and after a leg say
// which service sends and receives how many messages per event.

// connCounts is messages from (in) and to (out) each connection name.
type connCounts map[string][2]int64

func fetchConnz(ctx context.Context, base string) (connCounts, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/debug/nats/connz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("connz: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("connz: %s", resp.Status)
	}
	var cz struct {
		Conns []struct {
			Name    string `json:"name"`
			InMsgs  int64  `json:"in_msgs"`
			OutMsgs int64  `json:"out_msgs"`
		} `json:"connections"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&cz); err != nil {
		return nil, fmt.Errorf("connz: %w", err)
	}
	out := connCounts{}
	for _, c := range cz.Conns {
		name := c.Name
		if name == "" {
			name = "(unnamed)"
		}
		v := out[name]
		v[0] += c.InMsgs
		v[1] += c.OutMsgs
		out[name] = v
	}
	return out, nil
}

// printConnz prints, per connection name, the messages of a leg per flip.
func printConnz(out io.Writer, name string, before, after connCounts, flips int) {
	if flips == 0 || after == nil {
		return
	}
	names := make([]string, 0, len(after))
	for n := range after {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	var in, sent int64
	for _, n := range names {
		d0, d1 := after[n][0]-before[n][0], after[n][1]-before[n][1]
		if d0 == 0 && d1 == 0 {
			continue
		}
		in, sent = in+d0, sent+d1
		parts = append(parts, fmt.Sprintf("%s %.1f/%.1f", n, float64(d0)/float64(flips), float64(d1)/float64(flips)))
	}
	fmt.Fprintf(out, "NATS messages per flip, %s (sent/received by each connection): %s; all %.1f/%.1f\n",
		name, strings.Join(parts, ", "), float64(in)/float64(flips), float64(sent)/float64(flips))
}
