package ingest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/notatcompany/notatcompany/services/ingest/console"
	"github.com/notatcompany/notatcompany/services/shared/deadletters"
)

// fakeDeadLetterStore answers a redrive with err, and lists one letter.
type fakeDeadLetterStore struct {
	DeadLetterAdmin
	err    error
	filter deadletters.Filter
	who    deadletters.Actor
}

func (f *fakeDeadLetterStore) List(_ context.Context, flt deadletters.Filter, after uint64, limit int) (deadletters.Page, error) {
	f.filter = flt
	return deadletters.Page{DeadLetters: []deadletters.Letter{{Sequence: 9, Consumer: "writer", Kind: "Decision", Reason: "400",
		DeadLetteredAt: time.Unix(1, 0), Deliveries: 1}}, Next: 10}, nil
}

func (f *fakeDeadLetterStore) Redrive(_ context.Context, seq uint64, who deadletters.Actor) (deadletters.Outcome, error) {
	f.who = who
	return deadletters.Outcome{Sequence: seq, Outcome: deadletters.OutcomeRedriven}, f.err
}

func TestConsoleDeadLetters(t *testing.T) {
	who := console.Actor{Name: "Sam", TokenFingerprint: "abcd1234"}
	for _, tt := range []struct {
		err     error
		outcome string
		wantErr error
	}{
		{nil, deadletters.OutcomeRedriven, nil},
		{fmt.Errorf("x: %w", deadletters.ErrSuperseded), deadletters.OutcomeSuperseded, nil},
		{fmt.Errorf("x: %w", deadletters.ErrNoOrigin), deadletters.OutcomeNoOrigin, nil},
		{fmt.Errorf("x: %w", deadletters.ErrNotFound), "", console.ErrNotFound},
		{errors.New("jetstream down"), "", errors.New("jetstream down")},
	} {
		f := &fakeDeadLetterStore{err: tt.err}
		got, err := consoleDeadLetters{f}.Redrive(context.Background(), 9, who)
		if got != tt.outcome || (err == nil) != (tt.wantErr == nil) || tt.wantErr == console.ErrNotFound && !errors.Is(err, console.ErrNotFound) {
			t.Errorf("redrive with %v = %q, %v; want %q, %v", tt.err, got, err, tt.outcome, tt.wantErr)
		}
		if f.who != (deadletters.Actor{Name: "Sam", TokenFingerprint: "abcd1234"}) {
			t.Errorf("the store was told %+v", f.who)
		}
	}
	f := &fakeDeadLetterStore{}
	p, err := consoleDeadLetters{f}.List(context.Background(), contactOrg, 0, 50)
	if err != nil || len(p.Letters) != 1 || p.Letters[0].Sequence != 9 || p.Next != 10 || f.filter.Organization != contactOrg {
		t.Errorf("list = %+v, %v with filter %+v", p, err, f.filter)
	}
}

// The console records the token's fingerprint the admin API records.
func TestConsoleFingerprintIsTheAdminAPIs(t *testing.T) {
	if got, want := console.Fingerprint(testAdminToken), tokenFingerprint(testAdminToken); got != want {
		t.Errorf("console fingerprint %q, admin API's %q", got, want)
	}
}
