package ingest

import (
	"context"
	"errors"

	"github.com/notatcompany/notatcompany/services/ingest/console"
	"github.com/notatcompany/notatcompany/services/shared/deadletters"
)

// The console's readers over the admin API's own.

// consoleDeadLetters is the console's view of the dead letter store the
// admin API uses: the same list, the same redrive, audited the same way.
type consoleDeadLetters struct{ store DeadLetterAdmin }

func (d consoleDeadLetters) List(ctx context.Context, org string, after uint64, limit int) (console.DeadLetterPage, error) {
	p, err := d.store.List(ctx, deadletters.Filter{Organization: org}, after, limit)
	if err != nil {
		return console.DeadLetterPage{}, err
	}
	out := console.DeadLetterPage{Next: p.Next}
	for _, l := range p.DeadLetters {
		out.Letters = append(out.Letters, console.DeadLetter{Sequence: l.Sequence, Consumer: l.Consumer, Kind: l.Kind, Reason: l.Reason,
			OriginSubject: l.OriginSubject, Deliveries: l.Deliveries, At: l.DeadLetteredAt})
	}
	return out, nil
}

// Redrive answers what became of the dead letter: redriven, or not
// because a newer message is on its subject or it names no origin.
func (d consoleDeadLetters) Redrive(ctx context.Context, seq uint64, who console.Actor) (string, error) {
	out, err := d.store.Redrive(ctx, seq, deadletters.Actor{Name: who.Name, TokenFingerprint: who.TokenFingerprint})
	switch {
	case errors.Is(err, deadletters.ErrNotFound):
		return "", console.ErrNotFound
	case errors.Is(err, deadletters.ErrSuperseded):
		return deadletters.OutcomeSuperseded, nil
	case errors.Is(err, deadletters.ErrNoOrigin):
		return deadletters.OutcomeNoOrigin, nil
	case err != nil:
		return "", err
	}
	return out.Outcome, nil
}
