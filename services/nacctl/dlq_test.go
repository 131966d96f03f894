package nacctl

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/deadletters"
)

func TestParseDLQConfig(t *testing.T) {
	env := map[string]string{"NAC_ADMIN_TOKEN": "admin-token-0123456789", "USER": "ops"}
	getenv := func(k string) string { return env[k] }
	org := "6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f"
	for _, c := range []struct {
		args    []string
		want    DLQConfig
		problem string // in the error; "" for none
	}{
		{args: []string{"dlq", "list"}, want: DLQConfig{Sub: DLQList, Limit: 50}},
		{args: []string{"dlq", "list", "--consumer", "writer", "--org", strings.ToUpper(org), "--after", "7", "--limit", "5", "--json"},
			want: DLQConfig{Sub: DLQList, Consumer: "writer", Org: org, After: 7, Limit: 5, JSON: true}},
		{args: []string{"dlq", "show", "12"}, want: DLQConfig{Sub: DLQShow, Sequence: 12}},
		{args: []string{"dlq", "redrive", "12", "--actor", "oncall"}, want: DLQConfig{Sub: DLQRedrive, Sequence: 12, Actor: "oncall"}},
		{args: []string{"dlq", "redrive", "--consumer", "writer"}, want: DLQConfig{Sub: DLQRedrive, Consumer: "writer"}},
		{args: []string{"dlq", "discard", "--all"}, want: DLQConfig{Sub: DLQDiscard, All: true}},
		{args: []string{"dlq", "show"}, problem: "sequence is required"},
		{args: []string{"dlq", "show", "x1"}, problem: `"x1": want a dead letter's sequence`},
		{args: []string{"dlq", "redrive"}, problem: "give one dead letter's sequence, or --consumer, --org or --all"},
		{args: []string{"dlq", "discard", "3", "--all"}, problem: "give one dead letter's sequence, or"},
		{args: []string{"dlq", "list", "--org", "contoso"}, problem: `--org="contoso"`},
		{args: []string{"dlq", "list", "--limit", "0"}, problem: "--limit=0"},
		{args: []string{"dlq", "requeue"}, problem: `"requeue": want list, show, redrive or discard`},
		{args: []string{"dlq"}, problem: "needs a subcommand"},
	} {
		got, err := ParseDLQConfig(c.args, getenv, io.Discard)
		if c.problem != "" {
			if err == nil || !strings.Contains(err.Error(), c.problem) {
				t.Errorf("%v: error %v, want one saying %q", c.args, err, c.problem)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", c.args, err)
			continue
		}
		want := c.want
		want.APIURL, want.Token = "http://127.0.0.1:8080", env["NAC_ADMIN_TOKEN"]
		if want.Actor == "" {
			want.Actor = "ops"
		}
		if got != want {
			t.Errorf("%v:\n got %+v\nwant %+v", c.args, got, want)
		}
	}
	var out bytes.Buffer
	if _, err := ParseDLQConfig([]string{"dlq", "-h"}, getenv, &out); !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "redrive SEQ") {
		t.Errorf("dlq -h: %v\n%s", err, out.String())
	}
	if _, err := ParseDLQConfig([]string{"dlq", "list"}, func(string) string { return "" }, io.Discard); err == nil || !strings.Contains(err.Error(), "NAC_ADMIN_TOKEN") {
		t.Errorf("without a token: %v", err)
	}
}

func TestDeadLetterTables(t *testing.T) {
	at := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	var out bytes.Buffer
	WriteDeadLetters(&out, []deadletters.Letter{
		{Sequence: 7, Consumer: "writer", Kind: "Decision", OrganizationID: "6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f", Deliveries: 1,
			DeadLetteredAt: at, Reason: "Dataverse answered 400 Bad Request: " + strings.Repeat("x", 100)},
		{Sequence: 9, Consumer: "validator-profile", Kind: "ProfileChange", Deliveries: 8, DeadLetteredAt: at, Reason: "gave up"},
	})
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "SEQ") || !strings.Contains(lines[1], "writer") ||
		!strings.HasSuffix(lines[1], "…") || !strings.Contains(lines[2], "  -  ") {
		t.Errorf("table:\n%s", out.String())
	}
	out.Reset()
	WriteDeadLetters(&out, nil)
	if out.String() != "no dead letters\n" {
		t.Errorf("empty table %q", out.String())
	}
	for _, c := range []struct {
		o    deadletters.Outcome
		want string
	}{
		{deadletters.Outcome{Sequence: 7, Outcome: "redriven", OriginSubject: "nac.decision.o.c", RedrivenSequence: 31}, "dead letter 7 redriven to nac.decision.o.c (stored at 31)"},
		{deadletters.Outcome{Sequence: 7, Outcome: "discarded"}, "dead letter 7 discarded"},
		{deadletters.Outcome{Sequence: 7, Outcome: "superseded", Detail: "newer"}, "dead letter 7 superseded: newer"},
	} {
		if got := OutcomeLine(c.o); got != c.want {
			t.Errorf("OutcomeLine = %q, want %q", got, c.want)
		}
	}
	out.Reset()
	v := int32(1)
	WriteDeadLetter(&out, deadletters.Detail{Letter: deadletters.Letter{Sequence: 7, Consumer: "writer", Kind: "Decision", Size: 120,
		OriginSubject: "nac.decision.o.c", OriginStream: "NAC_DECISIONS", OriginSequence: 3, DeadLetteredAt: at},
		Headers: []string{"X-Trace"}, Event: &deadletters.Event{ID: "d-1", Contact: "c", Value: &v, Rule: "left_company"}})
	for _, want := range []string{`(?m)^origin +nac\.decision\.o\.c \(NAC_DECISIONS 3\)$`, `(?m)^payload +Decision, 120 bytes$`,
		`(?m)^  rule +left_company$`, `(?m)^  value +1$`, `(?m)^headers +X-Trace$`} {
		if !regexp.MustCompile(want).MatchString(out.String()) {
			t.Errorf("show lacks %s:\n%s", want, out.String())
		}
	}
}
