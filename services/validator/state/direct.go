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
// wildcards), followed by an end-of-batch marker that says up to which
// stream sequence the answer is complete. One request replaces a get per
// key, and a listing of index edges under several prefixes is one request
// too, without a STREAM.INFO. The same request from a sequence on names
// only what changed since: that is how an evaluation checks, after
// publishing, whether what it read still stands. Responses come back on
// one inbox subscription per store, told apart by their reply token, so
// that a request costs no subscribe and unsubscribe of its own.

// maxMultiLast is the most subjects the server answers one multi-last
// request with (nats-server's maxAllowedResponses); beyond, it answers
// 413, and the filters are split, a single one read in pages.
const maxMultiLast = 1024

// pageSize is how many messages one page of a large listing asks for.
const pageSize = 1000

// Msg is the last message of one subject.
type Msg struct {
	Subject string
	Seq     uint64
	Header  nats.Header
	Data    []byte
	// Deleted: a KV delete or purge marker, which readers step over and a
	// check for changes counts.
	Deleted bool
}

// Pos is where a stream stood for a read: every write to the subjects it
// asked for, up to this sequence, is in what it returned. 0 when nothing
// matched: then every message found later is newer than the read.
type Pos uint64

// Since is the sequence from which a message is a change to a read at p.
func (p Pos) Since() uint64 { return uint64(p) + 1 }

// directGets sends batched direct get requests and collects their answers.
type directGets struct {
	nc     *nats.Conn
	api    string // the JetStream API prefix, "$JS.API."
	inbox  string // "<inbox>." + token per request
	sub    *nats.Subscription
	next   atomic.Uint64
	mu     sync.Mutex
	answer map[string]*collector
}

// collector gathers the messages of one request's answer as they arrive:
// a buffer that grows with the answer (a channel sized for the largest
// answer cost 8 KB a request), and a signal that there are more.
type collector struct {
	mu    sync.Mutex
	msgs  []*nats.Msg
	most  int
	ready chan struct{} // one pending signal
}

func (c *collector) add(m *nats.Msg) {
	c.mu.Lock()
	if len(c.msgs) >= c.most {
		c.mu.Unlock()
		return // more than the request can have asked for: not ours
	}
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
	select {
	case c.ready <- struct{}{}:
	default:
	}
}

// take returns what arrived since the last take, waiting for at least one.
func (c *collector) take(ctx context.Context, into []*nats.Msg) ([]*nats.Msg, error) {
	for {
		c.mu.Lock()
		if len(c.msgs) > 0 {
			into = append(into[:0], c.msgs...)
			c.msgs = c.msgs[:0]
			c.mu.Unlock()
			return into, nil
		}
		c.mu.Unlock()
		select {
		case <-c.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func newDirectGets(js jetstream.JetStream) (*directGets, error) {
	nc := js.Conn()
	api := js.Options().APIPrefix
	if api == "" {
		api = "$JS.API."
	} else if !strings.HasSuffix(api, ".") {
		api += "."
	}
	d := &directGets{nc: nc, api: api, inbox: nc.NewInbox() + ".", answer: map[string]*collector{}}
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
	c := d.answer[m.Subject[len(d.inbox):]]
	d.mu.Unlock()
	if c != nil {
		c.add(m)
	}
}

// errTooMany is the server's 413: more subjects match than one answer holds.
var errTooMany = errors.New("too many subjects for one direct get")

// multiLastRequest is the JSON of a multi-last direct get.
type multiLastRequest struct {
	MultiLast []string `json:"multi_last"`
	Seq       uint64   `json:"seq,omitempty"`
}

// pageRequest is the JSON of one page of a listing.
type pageRequest struct {
	Seq     uint64 `json:"seq"`
	NextFor string `json:"next_by_subj"`
	Batch   int    `json:"batch"`
}

// answer is what one request returned: its messages, the position it is
// complete up to, and the end-of-batch marker's pending count.
type answer struct {
	msgs    []Msg
	pos     Pos
	pending uint64
}

// request sends req to stream's direct get and collects the answer; an
// answer of no messages is empty, not an error.
func (d *directGets) request(ctx context.Context, stream string, req any, most int) (answer, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return answer{}, err
	}
	return d.send(ctx, stream, "DIRECT.GET."+stream, body, most, false)
}

// send publishes body to the API subject and collects the answer: a batch
// ends with its end-of-batch marker, a single get (one) with its message.
func (d *directGets) send(ctx context.Context, stream, subject string, body []byte, most int, one bool) (answer, error) {
	token := strconv.FormatUint(d.next.Add(1), 36)
	c := &collector{most: most + 1, ready: make(chan struct{}, 1)}
	d.mu.Lock()
	d.answer[token] = c
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.answer, token)
		d.mu.Unlock()
	}()
	if err := d.nc.PublishRequest(d.api+subject, d.inbox+token, body); err != nil {
		return answer{}, fmt.Errorf("direct get %s: %w", stream, err)
	}
	var a answer
	var seen uint64 // the highest sequence of the answer, deletes included
	var batch []*nats.Msg
	for {
		var err error
		if batch, err = c.take(ctx, batch); err != nil {
			return answer{}, fmt.Errorf("direct get %s: %w", stream, err)
		}
		for _, m := range batch {
			done, err := a.add(m, stream, &seen, one)
			if err != nil {
				return answer{}, err
			}
			if done {
				return a, nil
			}
		}
	}
}

// add takes one message of an answer; done when the answer is complete.
func (a *answer) add(m *nats.Msg, stream string, seen *uint64, one bool) (done bool, err error) {
	status := m.Header.Get("Status")
	switch {
	case status == "" && len(m.Header) > 0:
		seq, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
		if err != nil {
			return true, fmt.Errorf("direct get %s: bad sequence header", stream)
		}
		*seen = max(*seen, seq)
		op := m.Header.Get("KV-Operation")
		a.msgs = append(a.msgs, Msg{Subject: m.Header.Get(jetstream.SubjectHeader), Seq: seq, Header: m.Header, Data: m.Data,
			Deleted: op == "DEL" || op == "PURGE"})
		if one {
			a.pos = Pos(seq)
			return true, nil
		}
		return false, nil
	case status == "204": // end of batch
		a.pending, _ = strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
		// A multi-last answer says where the stream stood; a page does
		// not, and is complete up to the last message it holds.
		upTo, _ := strconv.ParseUint(m.Header.Get("Nats-UpTo-Sequence"), 10, 64)
		a.pos = Pos(max(upTo, *seen))
		return true, nil
	case status == "404":
		return true, nil
	case status == "413":
		return true, errTooMany
	default:
		return true, fmt.Errorf("direct get %s: %s %s", stream, status, m.Header.Get("Description"))
	}
}

// lastFor returns the last message of every subject of stream that
// matches one of filters, from sequence since on (0 or 1: all; of a
// single subject, a message at or after since, which says it changed),
// and for each filter the position the answer is complete up to: in one
// request when the server allows, else in halves, a single filter in
// pages.
func (d *directGets) lastFor(ctx context.Context, stream string, filters []string, since uint64) ([]Msg, []Pos, error) {
	if len(filters) == 0 {
		return nil, nil, nil
	}
	if len(filters) == 1 && !strings.ContainsAny(filters[0], "*>") {
		// One subject: a get of its last message, or of its next one from
		// since (a change), answers with the message alone.
		a, err := d.one(ctx, stream, filters[0], since)
		return a.msgs, []Pos{a.pos}, err
	}
	a, err := d.request(ctx, stream, multiLastRequest{MultiLast: filters, Seq: since}, maxMultiLast)
	switch {
	case errors.Is(err, errTooMany) && len(filters) == 1:
		msgs, pos, err := d.pages(ctx, stream, filters[0], max(since, 1))
		return msgs, []Pos{pos}, err
	case errors.Is(err, errTooMany):
		half := len(filters) / 2
		first, p1, err := d.lastFor(ctx, stream, filters[:half], since)
		if err != nil {
			return nil, nil, err
		}
		rest, p2, err := d.lastFor(ctx, stream, filters[half:], since)
		if err != nil {
			return nil, nil, err
		}
		return append(first, rest...), append(p1, p2...), nil
	case err != nil:
		return nil, nil, err
	}
	pos := make([]Pos, len(filters))
	for i := range pos {
		pos[i] = a.pos
	}
	return a.msgs, pos, nil
}

// one reads the last message of subject, or from since (above 1) the
// first at or after since: a message alone, no end-of-batch marker. The
// answer is complete up to that message's sequence (a subject's writes
// after it are newer), or says nothing (0) when there is none.
func (d *directGets) one(ctx context.Context, stream, subject string, since uint64) (answer, error) {
	if since <= 1 {
		return d.send(ctx, stream, "DIRECT.GET."+stream+"."+subject, nil, 1, true)
	}
	body, err := json.Marshal(struct {
		Seq     uint64 `json:"seq"`
		NextFor string `json:"next_by_subj"`
	}{since, subject})
	if err != nil {
		return answer{}, err
	}
	return d.send(ctx, stream, "DIRECT.GET."+stream, body, 1, true)
}

// pages reads every message on subjects matching filter, from sequence
// seq on, a page at a time in stream order. Where a bucket keeps one
// revision per key (the index), that is the last message of each; a key
// written again meanwhile may be seen twice, never missed.
func (d *directGets) pages(ctx context.Context, stream, filter string, seq uint64) ([]Msg, Pos, error) {
	var out []Msg
	var pos Pos
	for {
		a, err := d.request(ctx, stream, pageRequest{Seq: seq, NextFor: filter, Batch: pageSize}, pageSize)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, a.msgs...)
		pos = max(pos, a.pos)
		if a.pending == 0 || a.pos == 0 {
			return out, pos, nil
		}
		seq = uint64(a.pos) + 1
	}
}
