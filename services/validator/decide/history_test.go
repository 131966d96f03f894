package decide

import (
	"testing"
	"time"
)

func TestRecall(t *testing.T) {
	set := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	at := set.UnixMilli()
	tests := []struct {
		name        string
		flag        int // the contact's column
		last        *Last
		flagAt      int64
		wantFlag    int
		wantDigest  string
		wantIgnored time.Time
	}{
		{name: "no decision yet, no Ignore", flag: NoFeedback, flagAt: at, wantFlag: NoFeedback},
		{name: "an Ignore before any decision is dated by its version", flag: Ignore, flagAt: at,
			wantFlag: Ignore, wantIgnored: set},
		{name: "an Ignore of unknown version has no date", flag: Ignore, flagAt: 0, wantFlag: Ignore},
		{name: "our last Ignore names the evidence it overrode", flag: Ignore, flagAt: at,
			last: &Last{Value: Ignore, Underlying: "d1", FlagSeen: at}, wantFlag: Ignore, wantDigest: "d1", wantIgnored: set},
		{name: "an Ignore a re-flag overrode is our flag now", flag: Ignore, flagAt: at,
			last: &Last{Value: NotAtCompany, Digest: "d2", FlagSeen: at}, wantFlag: NotAtCompany, wantIgnored: set},
		{name: "an Ignore set after our last decision is the user's word", flag: Ignore, flagAt: at + 1,
			last: &Last{Value: NotAtCompany, Digest: "d2", FlagSeen: at}, wantFlag: Ignore, wantIgnored: set.Add(time.Millisecond)},
		{name: "a flag after a decision is left as it is", flag: NotAtCompany, flagAt: at,
			last: &Last{Value: NoFeedback, FlagSeen: at - 1}, wantFlag: NotAtCompany},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := Input{Contact: Contact{Flag: tt.flag}}
			in.Recall(tt.last, tt.flagAt)
			if in.Contact.Flag != tt.wantFlag || in.IgnoredDigest != tt.wantDigest || !in.IgnoredAt.Equal(tt.wantIgnored) {
				t.Errorf("flag %d, ignored digest %q at %v; want %d, %q at %v",
					in.Contact.Flag, in.IgnoredDigest, in.IgnoredAt, tt.wantFlag, tt.wantDigest, tt.wantIgnored)
			}
		})
	}
}

func TestWorthPublishing(t *testing.T) {
	flag := Result{Value: NotAtCompany, Reason: ReasonLeft, Confidence: 0.9, Evidence: Evidence{MemberID: "m1"}}
	otherFlag := flag
	otherFlag.Evidence.MemberID = "m2"
	clear := Result{Value: NoFeedback, Reason: ReasonStillThere}
	ignore := Result{Value: Ignore, Reason: ReasonUserOverride, Underlying: flag.Digest()}
	tests := []struct {
		name string
		r    Result
		last *Last
		col  Column
		keep bool
		want bool
	}{
		{name: "first decision, the column says the same", r: clear, col: Column{Value: NoFeedback}, want: false},
		{name: "first decision, the column differs", r: flag, col: Column{Value: NoFeedback}, want: true},
		{name: "first decision, a flag already in the column", r: flag, col: Column{Value: NotAtCompany}, want: false},
		{name: "value changed", r: clear, last: &Last{Value: NotAtCompany, Digest: flag.Digest()}, want: true},
		{name: "the same flag again", r: flag, last: &Last{Value: NotAtCompany, Digest: flag.Digest()}, want: false},
		{name: "a flag on other evidence", r: otherFlag, last: &Last{Value: NotAtCompany, Digest: flag.Digest()}, want: true},
		{name: "no feedback with other reasons stays quiet", r: Result{Value: NoFeedback, Reason: ReasonUnmatched},
			last: &Last{Value: NoFeedback, Digest: clear.Digest()}, want: false},
		{name: "an Ignore learns what the user overrode", r: ignore, last: &Last{Value: Ignore}, want: true},
		{name: "an Ignore that knew it already", r: ignore, last: &Last{Value: Ignore, Underlying: flag.Digest()}, want: false},
		{name: "an Ignore's evidence changing is not news", r: Result{Value: Ignore, Underlying: otherFlag.Digest()},
			last: &Last{Value: Ignore, Underlying: flag.Digest()}, want: false},
		{name: "a user changed the column since", r: flag, last: &Last{Value: NotAtCompany, Digest: flag.Digest(), FlagSeen: 10},
			col: Column{Value: NoFeedback, At: 11}, want: true},
		{name: "a user changed the column, the organization keeps it", r: flag, last: &Last{Value: NotAtCompany, Digest: flag.Digest(), FlagSeen: 10},
			col: Column{Value: NoFeedback, At: 11}, keep: true, want: false},
		{name: "the column changed before our last decision", r: flag, last: &Last{Value: NotAtCompany, Digest: flag.Digest(), FlagSeen: 10},
			col: Column{Value: NoFeedback, At: 10}, want: false},
		{name: "the column changed to what we decide", r: flag, last: &Last{Value: NotAtCompany, Digest: flag.Digest(), FlagSeen: 10},
			col: Column{Value: NotAtCompany, At: 11}, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := WorthPublishing(tt.r, tt.last, tt.col, tt.keep); got != tt.want {
				t.Errorf("WorthPublishing = %v, want %v", got, tt.want)
			}
		})
	}
}
