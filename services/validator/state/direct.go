package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Batched direct gets: the server answers one request with the last
// message of every subject matching a list of filters (exact subjects or
// wildcards), followed by an end-of-batch marker. One request replaces a
// get per key, and a listing of index edges under several prefixes is one
// request too, without a STREAM.INFO (whose JSON, built and parsed per
// listing, cost more than the lookup). Responses come back on one inbox
// subscription per store, told apart by their reply token, so that a
// request costs no subscribe and unsubscribe of its own.

// maxMultiLast is the most subjects the server answers one multi-last
// request with (nats-server's maxAllowedResponses); beyond, it answers
// 413 and each filter is read in pages instead.
const maxMultiLast = 1024

// pageSize is how many messages one page of a large listing asks for.
const pageSize = 1000

// lastMsg is the last message of one subject.
type lastMsg struct {
	Subject string
	Seq     uint64
	Data    []byte
}

// directGets sends batched direct get requests and collects their answers.
type directGets struct {
	nc     *nats.Conn
	api    string // the JetStream API prefix, "$JS.API."
	inbox  string // "<inbox>." + token per request
	sub    *nats.Subscription
	next   atomic.Uint64
	mu     sync.Mutex
	answer map[string]chan *nats.Msg
}

func newDirectGets(js jetstream.JetStream) (*directGets, error) {
	nc := js.Conn()
	api := js.Options().APIPrefix
	if api == "" {
		api = "$JS.API."
	} else if !strings.HasSuffix(api, ".") {
		api += "."
	}
	d := &directGets{nc: nc, api: api, inbox: nc.NewInbox() + ".", answer: map[string]chan *nats.Msg{}}
	sub, err := nc.Subscribe(d.inbox+"*", d.dispatch)
	if err != nil {
		return nil, fmt.Errorf("direct get inbox: %w", err)
	}
	// Answers are handed on at once; never drop one as a slow consumer.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return nil, err
	}
	d.sub = sub
	return d, nil
}

func (d *directGets) dispatch(m *nats.Msg) {
	d.mu.Lock()
	ch := d.answer[m.Subject[len(d.inbox):]]
	d.mu.Unlock()
	if ch != nil {
		select {
		case ch <- m:
		default: // more than the request can have asked for: not ours
		}
	}
}

// errTooMany is the server's 413: more subjects match than one answer holds.
var errTooMany = errors.New("too many subjects for one direct get")

// request sends req to stream's direct get and returns the messages of the
// answer, the end-of-batch marker's pending count, and the marker's last
// sequence; an answer of no messages is empty, not an error.
func (d *directGets) request(ctx context.Context, stream string, req any, most int) ([]lastMsg, uint64, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, 0, err
	}
	token := strconv.FormatUint(d.next.Add(1), 36)
	ch := make(chan *nats.Msg, most+1)
	d.mu.Lock()
	d.answer[token] = ch
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.answer, token)
		d.mu.Unlock()
	}()
	if err := d.nc.PublishRequest(d.api+"DIRECT.GET."+stream, d.inbox+token, body); err != nil {
		return nil, 0, fmt.Errorf("direct get %s: %w", stream, err)
	}
	var out []lastMsg
	for {
		var m *nats.Msg
		select {
		case m = <-ch:
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("direct get %s: %w", stream, ctx.Err())
		}
		status := m.Header.Get("Status")
		switch {
		case status == "" && len(m.Header) > 0:
			if op := m.Header.Get("KV-Operation"); op == "DEL" || op == "PURGE" {
				continue
			}
			seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
			if err != nil {
				return nil, 0, fmt.Errorf("direct get %s: bad sequence header", stream)
			}
			out = append(out, lastMsg{Subject: m.Header.Get(jetstream.SubjectHeader), Seq: seq, Data: m.Data})
		case status == "204": // end of batch
			pending, _ := strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
			return out, pending, nil
		case status == "404":
			return out, 0, nil
		case status == "413":
			return nil, 0, errTooMany
		default:
			return nil, 0, fmt.Errorf("direct get %s: %s %s", stream, status, m.Header.Get("Description"))
		}
	}
}

// lastFor returns the last message of every subject of stream that
// matches one of filters, in one request when the server allows, else a
// filter at a time in pages.
func (d *directGets) lastFor(ctx context.Context, stream string, filters []string) ([]lastMsg, error) {
	if len(filters) == 0 {
		return nil, nil
	}
	out, _, err := d.request(ctx, stream, struct {
		MultiLast []string `json:"multi_last"`
	}{filters}, maxMultiLast)
	if !errors.Is(err, errTooMany) {
		return out, err
	}
	out = nil
	for _, f := range filters {
		msgs, err := d.pages(ctx, stream, f)
		if err != nil {
			return nil, err
		}
		out = append(out, msgs...)
	}
	return out, nil
}

// pages reads every message on subjects matching filter, a page at a time
// in stream order. Where a bucket keeps one revision per key (the index),
// that is the last message of each; a key written again meanwhile may be
// seen twice, never missed.
func (d *directGets) pages(ctx context.Context, stream, filter string) ([]lastMsg, error) {
	var out []lastMsg
	seq := uint64(1)
	for {
		msgs, pending, err := d.request(ctx, stream, struct {
			Seq     uint64 `json:"seq"`
			NextFor string `json:"next_by_subj"`
			Batch   int    `json:"batch"`
		}{seq, filter, pageSize}, pageSize)
		if err != nil {
			return nil, err
		}
		out = append(out, msgs...)
		if pending == 0 || len(msgs) == 0 {
			return out, nil
		}
		seq = msgs[len(msgs)-1].Seq + 1
	}
}
