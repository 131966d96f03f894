package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// client posts to the stack.
type client struct {
	stack *Stack
	http  *http.Client
	pop   population
	// flips numbers the flip events of every loader: their ids are the
	// events' Nats-Msg-Id, and one reused within the duplicate window
	// would be dropped as a duplicate.
	flips atomic.Int64

	tokenOnce sync.Once
	token     string
	tokenErr  error
}

func newClient(s *Stack, pop population) *client {
	tr := &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024, IdleConnTimeout: time.Minute}
	return &client{stack: s, http: &http.Client{Transport: tr, Timeout: 60 * time.Second}, pop: pop}
}

// post sends body and fails unless the answer is 2xx.
func (c *client) post(ctx context.Context, url string, body []byte, header http.Header) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header = header
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %d %s", strings.SplitN(url, "?", 2)[0], resp.StatusCode, bytes.TrimSpace(b))
	}
	return nil
}

func (c *client) dataverse(ctx context.Context, body []byte) error {
	return c.post(ctx, c.stack.HTTP+"/webhooks/dataverse?code="+url.QueryEscape(c.stack.Secrets.WebhookKey), body, http.Header{})
}

// profiles posts events (one, or a batch of up to 100), signed.
func (c *client) profiles(ctx context.Context, events ...map[string]any) error {
	var v any = events
	if len(events) == 1 {
		v = events[0]
	}
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.post(ctx, c.stack.HTTP+"/webhooks/profile", body, http.Header{"X-Li-Signature": {sign(c.stack.Secrets.ProfileSecret, body)}})
}

// standinToken is an access token of the stand-in's application user.
func (c *client) standinToken(ctx context.Context) (string, error) {
	c.tokenOnce.Do(func() {
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"notatcompany-devstack"},
			"client_secret": {c.stack.Secrets.ClientSecret}}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.stack.Standin+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := c.http.Do(req)
		if err != nil {
			c.tokenErr = fmt.Errorf("stand-in token: %w", err)
			return
		}
		defer resp.Body.Close()
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
			c.tokenErr = fmt.Errorf("stand-in token: %d %v", resp.StatusCode, err)
			return
		}
		c.token = tok.AccessToken
	})
	return c.token, c.tokenErr
}

// standinRows creates contact rows in the stand-in with one $batch of
// PATCHes (a PATCH without If-Match creates the row, as in Dataverse).
func (c *client) standinRows(ctx context.Context, rows map[string]map[string]any) error {
	tok, err := c.standinToken(ctx)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	const boundary = "batch_loadgen"
	for id, cols := range rows {
		data, err := json.Marshal(cols)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "--%s\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n", boundary)
		fmt.Fprintf(&b, "PATCH /api/data/v9.2/contacts(%s) HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s\r\n",
			id, len(data), data)
	}
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.stack.Standin+"/api/data/v9.2/$batch", &b)
	req.Header.Set("Content-Type", "multipart/mixed; boundary="+boundary)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Prefer", "odata.continue-on-error")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("stand-in rows: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || bytes.Count(body, []byte("HTTP/1.1 204")) != len(rows) {
		return fmt.Errorf("stand-in rows: %d, %d of %d created: %.300s", resp.StatusCode, bytes.Count(body, []byte("HTTP/1.1 204")), len(rows), body)
	}
	return nil
}

// seed makes contacts [from, to) exist everywhere, as Dynamics and the
// profile source would: the stand-in's rows, a Create webhook for each
// contact under its account, and a profile of its member, still at the
// company. perAccount contacts share an account; the accounts are named
// first. It returns once idle reports the stack has applied everything.
func (c *client) seed(ctx context.Context, from, to, perAccount int, accountOf func(i int) int, idle func(context.Context) error) error {
	const parallel = 32
	now := time.Now()
	accounts := map[int]bool{}
	for i := from; i < to; i++ {
		accounts[accountOf(i)] = true
	}
	for a := range accounts {
		body, err := c.pop.accountWebhook(a, companyHere, 0, now)
		if err != nil {
			return err
		}
		if err := c.dataverse(ctx, body); err != nil {
			return fmt.Errorf("seed account: %w", err)
		}
	}
	work := make(chan int)
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	for range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for start := range work {
				if err := c.seedChunk(ctx, start, min(start+100, to), accountOf); err != nil {
					failed.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	for start := from; start < to; start += 100 {
		if failed.Load() != nil {
			break
		}
		work <- start
	}
	close(work)
	wg.Wait()
	if err := failed.Load(); err != nil {
		return *err
	}
	return idle(ctx)
}

// seedChunk seeds contacts [from, to): stand-in rows in one $batch, a
// webhook each, and their members' profiles in one signed batch.
func (c *client) seedChunk(ctx context.Context, from, to int, accountOf func(int) int) error {
	rows := map[string]map[string]any{}
	for i := from; i < to; i++ {
		id, cols := c.pop.standinContact(i, accountOf(i))
		rows[id] = cols
	}
	if err := c.standinRows(ctx, rows); err != nil {
		return err
	}
	now := time.Now()
	var events []map[string]any
	for i := from; i < to; i++ {
		body, err := c.pop.contactWebhook(i, accountOf(i), now)
		if err != nil {
			return err
		}
		if err := c.dataverse(ctx, body); err != nil {
			return fmt.Errorf("seed contact: %w", err)
		}
		events = append(events, c.pop.profileEvent(i, fmt.Sprintf("lg-%s-seed-%d", c.pop.run, i), false, now))
	}
	if err := c.profiles(ctx, events...); err != nil {
		return fmt.Errorf("seed profiles: %w", err)
	}
	return nil
}
