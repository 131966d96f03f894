package writer

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
	"github.com/notatcompany/notatcompany/services/shared/memberkeys"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

// sealedDecision is a Not at Company decision whose member part is sealed
// under key, as the validator publishes it.
func sealedDecision(t *testing.T, id, contact string, key memberkeys.Key) *eventsv1.Decision {
	t.Helper()
	member, err := proto.Marshal(&eventsv1.MemberEvidence{MemberId: "m-1",
		EndedPosition:     &eventsv1.Position{CompanyName: "Contoso", End: &eventsv1.YearMonth{Year: 2026, Month: 6}},
		CurrentPosition:   &eventsv1.Position{CompanyName: "Tailspin Toys", Title: "Head of Buying", Current: true},
		ProfileObservedAt: timestamppb.New(time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC))})
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := memberkeys.Seal(key, bytes.Repeat([]byte{7}, 12), member, memberkeys.EvidenceAAD(orgA, contact))
	if err != nil {
		t.Fatal(err)
	}
	d := decision(id, orgA, contact, notAt, time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC))
	d.Confidence = 0.93
	d.Evidence = &eventsv1.Evidence{CompanyName: "Contoso", MemberMatch: "email", Sealed: sealed}
	return d
}

func TestEvidenceIsWrittenWithTheFlagClearedOnReversalAndNotAfterErasure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js, _ := testkit.JetStream(t)
	opener, err := memberkeys.Bind(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	key := memberkeys.Key{ID: "0123456789abcdef0123456789abcdef", Key: bytes.Repeat([]byte{1}, 32)}
	data, _ := json.Marshal(key)
	if _, err := js.Publish(ctx, bus.MemberKeyIDSubject(key.ID), data); err != nil {
		t.Fatal(err)
	}
	si := newStandin(t, dataversetest.Options{}, contact(1))
	cfg := testConfig()
	cfg.Default = si.target("")
	e := newEnv(t, cfg)
	e.svc.members = opener
	cols := cfg.Evidence.Columns
	row := func() map[string]any {
		r, _ := si.Row("contacts", contact(1))
		return r
	}

	e.handle(msgOf(t, sealedDecision(t, "d1", contact(1), key), 1))
	r := row()
	want := "Left Contoso in 2026-06; now Head of Buying at Tailspin Toys (profile 2026-11-01, email match, confidence 0.93)"
	if r[flagCol] != float64(1) || r[cols.Reason] != want || r[cols.SuggestedCompany] != "Tailspin Toys" ||
		r[cols.Confidence] != 0.93 || r[cols.DetectedOn] != "2026-11-02T10:00:00Z" {
		t.Fatalf("row = %v, want the flag and its evidence", r)
	}
	if n := len(si.apiRequests()); n != 1 {
		t.Fatalf("%d requests, want the flag and its evidence in one", n)
	}

	e.handle(msgOf(t, decision("d2", orgA, contact(1), noFeedback, time.Now()), 1))
	r = row()
	for _, c := range []string{cols.Reason, cols.SuggestedCompany, cols.Confidence, cols.DetectedOn} {
		if r[c] != nil {
			t.Errorf("after the reversal %s = %v, want cleared", c, r[c])
		}
	}
	if r[flagCol] != float64(0) || len(si.apiRequests()) != 2 {
		t.Errorf("reversal: flag %v after %d requests, want 0 after 2", r[flagCol], len(si.apiRequests()))
	}

	// The member is erased: the key is destroyed. A decision still
	// carrying the sealed evidence writes its flag, and nothing of the
	// evidence.
	keys, err := js.Stream(ctx, bus.StreamMemberKeys)
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.Purge(ctx, jetstream.WithPurgeSubject(bus.MemberKeyIDSubject(key.ID))); err != nil {
		t.Fatal(err)
	}
	e.handle(msgOf(t, sealedDecision(t, "d3", contact(1), key), 1))
	r = row()
	if r[flagCol] != float64(1) {
		t.Errorf("after erasure flag = %v, want 1", r[flagCol])
	}
	for _, c := range []string{cols.Reason, cols.SuggestedCompany, cols.Confidence, cols.DetectedOn} {
		if r[c] != nil {
			t.Errorf("after erasure %s = %v, want nothing written from shredded evidence", c, r[c])
		}
	}
}

func TestEvidenceOffWritesTheFlagAlone(t *testing.T) {
	t.Parallel()
	si := newStandin(t, dataversetest.Options{}, contact(1))
	cfg := testConfig()
	cfg.Default = si.target("")
	cfg.Evidence.Off = true
	e := newEnv(t, cfg)
	e.handle(msgOf(t, decision("d1", orgA, contact(1), notAt, time.Now()), 1))
	r, _ := si.Row("contacts", contact(1))
	if r[flagCol] != float64(1) {
		t.Fatalf("flag = %v, want 1", r[flagCol])
	}
	if _, ok := r[cfg.Evidence.Columns.Reason]; ok {
		t.Errorf("row = %v, want no evidence column touched", r)
	}
}
