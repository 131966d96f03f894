package deadletters

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// Bulk picks the dead letters a bulk redrive or discard handles: those
// matching Filter after the sequence After and up to UpTo, at most Limit.
type Bulk struct {
	Filter
	After uint64
	// UpTo bounds the sequences handled; 0: the stream's last sequence when
	// the action starts. A message set aside again while a redrive runs
	// (it failed once more) lies beyond it and is not redriven in a loop;
	// a caller going on with Next passes the UpTo it was given back.
	UpTo  uint64
	Limit int
}

// BulkResult is what a bulk action did: the outcome of each dead letter
// it handled, and where to go on (Next, as After) when more may match.
type BulkResult struct {
	Action   string    `json:"action"`
	Done     int       `json:"done"`
	Outcomes []Outcome `json:"outcomes"`
	Next     uint64    `json:"next,omitempty"`
	UpTo     uint64    `json:"upTo"`
}

// RedriveAll redrives the dead letters b picks, oldest first. A dead
// letter that cannot be redriven (superseded, no origin) is reported and
// left; a failure stops the run, with Next at the failed one.
func (s *Store) RedriveAll(ctx context.Context, b Bulk, who Actor) (BulkResult, error) {
	return s.all(ctx, ActionRedrive, b, func(seq uint64) (Outcome, error) { return s.Redrive(ctx, seq, who) })
}

// DiscardAll discards the dead letters b picks, oldest first.
func (s *Store) DiscardAll(ctx context.Context, b Bulk, who Actor) (BulkResult, error) {
	return s.all(ctx, ActionDiscard, b, func(seq uint64) (Outcome, error) { return s.Discard(ctx, seq, who) })
}

func (s *Store) all(ctx context.Context, action string, b Bulk, act func(seq uint64) (Outcome, error)) (BulkResult, error) {
	res := BulkResult{Action: action, Outcomes: []Outcome{}, UpTo: b.UpTo}
	if res.UpTo == 0 {
		ictx, cancel := context.WithTimeout(ctx, s.timeout)
		info, err := s.dead.Info(ictx)
		cancel()
		if err != nil {
			return res, fmt.Errorf("read stream %s: %w", s.dead.CachedInfo().Config.Name, err)
		}
		res.UpTo = info.State.LastSeq
	}
	var seqs []uint64
	next, err := s.scan(ctx, b.Filter, b.After, res.UpTo, func(m *jetstream.RawStreamMsg) bool {
		seqs = append(seqs, m.Sequence)
		return len(seqs) < clampLimit(b.Limit)
	})
	if err != nil && len(seqs) == 0 {
		return res, err
	}
	res.Next = next
	for _, seq := range seqs {
		out, err := act(seq)
		switch {
		case err == nil:
			res.Done++
		case errors.Is(err, ErrNotFound):
			continue // handled by someone else meanwhile
		case errors.Is(err, ErrSuperseded):
			out.Outcome, out.Detail = OutcomeSuperseded, ErrSuperseded.Error()
		case errors.Is(err, ErrNoOrigin):
			out.Outcome, out.Detail = OutcomeNoOrigin, ErrNoOrigin.Error()
		default:
			out.Outcome, out.Detail = OutcomeFailed, err.Error()
			res.Outcomes = append(res.Outcomes, out)
			res.Next = seq - 1 // go on with the failed one
			return res, nil
		}
		res.Outcomes = append(res.Outcomes, out)
	}
	return res, nil
}
