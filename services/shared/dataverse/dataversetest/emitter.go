package dataversetest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// WebhookFaults are test knobs of the webhook emitter, each applying to
// the next so many webhooks raised (a duplicate or reordered webhook
// counts once).
type WebhookFaults struct {
	// Drop loses webhooks, as a failed system job that no one retries.
	Drop int
	// Duplicate delivers webhooks twice.
	Duplicate int
	// Reorder holds a webhook back and delivers it after the next one.
	Reorder int
	// Oversize sends webhooks as Dataverse sends one over 256 KB: without
	// ParentContext, InputParameters and images, with the header
	// x-ms-dynamics-msg-size-exceeded.
	Oversize int
	// Delayed webhooks wait Delay before they are sent.
	Delayed int
	Delay   time.Duration
}

// Delivery is one webhook the emitter handled.
type Delivery struct {
	StepID    string
	Message   string
	Table     string
	RowID     string
	Status    int // of the last attempt; 0 when dropped or unreachable
	Attempts  int
	Dropped   bool
	Oversized bool
	Err       string
	Body      []byte
	Header    http.Header
}

// maxWebhookBody is the size beyond which Dataverse strips a webhook.
const maxWebhookBody = 256 << 10

type webhook struct {
	stepID, message, table, rowID string
	url                           string
	header                        http.Header
	body, small                   []byte // small: the size-exceeded form
	// The knobs that apply to it, taken when it was raised.
	drop, duplicate, reorder, oversize bool
	delay                              time.Duration
}

type emitter struct {
	mu      sync.Mutex
	wake    *sync.Cond
	queue   []*webhook
	held    *webhook
	running bool
	faults  WebhookFaults
	log     []Delivery
	client  *http.Client
	// retryDelay is how long the one retry of a 502/503/504 waits.
	retryDelay time.Duration
	// failed records a failed system job; called without e.mu held.
	failed func(Delivery)
}

func (e *emitter) init() {
	if e.wake == nil {
		e.wake = sync.NewCond(&e.mu)
		e.client = &http.Client{Timeout: 60 * time.Second} // Dataverse waits 60 s
		e.retryDelay = time.Second
	}
}

// InjectWebhookFaults adds to the pending webhook faults.
func (s *Server) InjectWebhookFaults(f WebhookFaults) {
	e := &s.ext.emitter
	e.mu.Lock()
	defer e.mu.Unlock()
	e.init()
	e.faults.Drop += f.Drop
	e.faults.Duplicate += f.Duplicate
	e.faults.Reorder += f.Reorder
	e.faults.Oversize += f.Oversize
	e.faults.Delayed += f.Delayed
	if f.Delay > 0 {
		e.faults.Delay = f.Delay
	}
}

// SetWebhookRetryDelay sets the wait before the one retry (default 1 s).
func (s *Server) SetWebhookRetryDelay(d time.Duration) {
	e := &s.ext.emitter
	e.mu.Lock()
	defer e.mu.Unlock()
	e.init()
	e.retryDelay = d
}

// Deliveries returns every webhook handled so far, in order.
func (s *Server) Deliveries() []Delivery {
	e := &s.ext.emitter
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.log)
}

// WaitWebhooks waits until every webhook raised so far was handled.
func (s *Server) WaitWebhooks(ctx context.Context) error {
	e := &s.ext.emitter
	for {
		e.mu.Lock()
		idle := !e.running && len(e.queue) == 0 && e.held == nil
		e.mu.Unlock()
		if idle {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("webhooks still pending: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// enqueue hands webhooks to the delivery goroutine, started when idle, so
// a stand-in without webhooks runs no goroutine.
func (e *emitter) enqueue(failed func(Delivery), hooks ...*webhook) {
	if len(hooks) == 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.init()
	e.failed = failed
	for _, h := range hooks {
		take := func(n *int) bool {
			if *n > 0 {
				*n--
				return true
			}
			return false
		}
		h.drop, h.duplicate, h.reorder, h.oversize = take(&e.faults.Drop), take(&e.faults.Duplicate), take(&e.faults.Reorder), take(&e.faults.Oversize)
		if take(&e.faults.Delayed) {
			h.delay = e.faults.Delay
		}
	}
	e.queue = append(e.queue, hooks...)
	e.wake.Broadcast()
	if !e.running {
		e.running = true
		go e.run()
	}
}

// run delivers webhooks one at a time, in the order they were raised
// (knobs aside), and returns when there are none left.
func (e *emitter) run() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for {
		if len(e.queue) == 0 && e.held != nil {
			// A reordered webhook waits for the next one, a while.
			timer := time.AfterFunc(2*time.Second, func() { e.mu.Lock(); e.wake.Broadcast(); e.mu.Unlock() })
			e.wake.Wait()
			timer.Stop()
			if len(e.queue) == 0 {
				h := e.held
				e.held = nil
				e.deliverUnlocked(h)
				continue
			}
		}
		if len(e.queue) == 0 {
			e.running = false
			return
		}
		h := e.queue[0]
		e.queue = e.queue[1:]
		if h.reorder && e.held == nil {
			e.held = h
			continue
		}
		e.deliverUnlocked(h)
		if e.held != nil {
			held := e.held
			e.held = nil
			e.deliverUnlocked(held)
		}
	}
}

// deliverUnlocked applies the knobs to h and sends it, releasing e.mu
// while it talks to the endpoint.
func (e *emitter) deliverUnlocked(h *webhook) {
	drop, dup, oversize, delay := h.drop, h.duplicate, h.oversize, h.delay
	if len(h.body) > maxWebhookBody {
		oversize = true
	}
	if drop {
		e.log = append(e.log, Delivery{StepID: h.stepID, Message: h.message, Table: h.table, RowID: h.rowID, Dropped: true, Body: h.body})
		return
	}
	client, retryDelay, failed := e.client, e.retryDelay, e.failed
	e.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	times := 1
	if dup {
		times = 2
	}
	var results []Delivery
	for range times {
		d := send(client, retryDelay, h, oversize)
		if d.Err != "" && failed != nil {
			failed(d)
		}
		results = append(results, d)
	}
	e.mu.Lock()
	e.log = append(e.log, results...)
}

// send posts one webhook with Dataverse's retry rule: once more, only on
// 502, 503 or 504.
func send(client *http.Client, retryDelay time.Duration, h *webhook, oversize bool) Delivery {
	d := Delivery{StepID: h.stepID, Message: h.message, Table: h.table, RowID: h.rowID, Oversized: oversize, Body: h.body}
	body := h.body
	header := h.header.Clone()
	if oversize {
		body = h.small
		header.Set("x-ms-dynamics-msg-size-exceeded", "true")
	}
	d.Body, d.Header = body, header
	for attempt := 1; attempt <= 2; attempt++ {
		d.Attempts = attempt
		req, err := http.NewRequest(http.MethodPost, h.url, bytes.NewReader(body))
		if err != nil {
			d.Err = err.Error()
			return d
		}
		req.Header = header.Clone()
		resp, err := client.Do(req)
		if err != nil {
			d.Status, d.Err = 0, err.Error()
			return d // an unreachable endpoint fails the job
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		d.Status, d.Err = resp.StatusCode, ""
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return d
		}
		d.Err = resp.Status
		if resp.StatusCode != http.StatusBadGateway && resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusGatewayTimeout {
			return d
		}
		if attempt == 1 {
			time.Sleep(retryDelay)
		}
	}
	return d
}

// webhookTarget is where a step's endpoint posts, with its auth.
func webhookTarget(endpointURL string, authType int, authValue string) (string, http.Header, error) {
	u, err := url.Parse(endpointURL)
	if err != nil {
		return "", nil, err
	}
	h := http.Header{}
	q := u.Query()
	switch authType {
	case 4:
		q.Set("code", authValue)
	case 5, 6:
		settings, err := parseSettings(authValue)
		if err != nil {
			return "", nil, err
		}
		for _, kv := range settings {
			if authType == 5 {
				h.Set(kv[0], kv[1])
			} else {
				q.Set(kv[0], kv[1])
			}
		}
	}
	u.RawQuery = q.Encode()
	return u.String(), h, nil
}

// bypassed reports whether a request asked Dataverse not to run our step.
func bypassed(r *http.Request, stepID string) bool {
	for _, v := range strings.Split(r.Header.Get("MSCRM.BypassBusinessLogicExecution"), ",") {
		if strings.TrimSpace(v) == "CustomAsync" {
			return true
		}
	}
	if strings.EqualFold(r.Header.Get("MSCRM.BypassCustomPluginExecution"), "true") {
		return true
	}
	for _, id := range strings.Split(r.Header.Get("MSCRM.BypassBusinessLogicExecutionStepIds"), ",") {
		if strings.EqualFold(strings.TrimSpace(id), stepID) {
			return true
		}
	}
	return false
}
