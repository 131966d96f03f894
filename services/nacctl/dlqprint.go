package nacctl

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/deadletters"
)

// OutcomeLine is one dead letter's outcome as a sentence.
func OutcomeLine(o deadletters.Outcome) string {
	switch o.Outcome {
	case deadletters.OutcomeRedriven:
		return fmt.Sprintf("dead letter %d redriven to %s (stored at %d)", o.Sequence, o.OriginSubject, o.RedrivenSequence)
	case deadletters.OutcomeDiscarded:
		return fmt.Sprintf("dead letter %d discarded", o.Sequence)
	}
	return fmt.Sprintf("dead letter %d %s: %s", o.Sequence, o.Outcome, o.Detail)
}

// WriteDeadLetters prints dead letters as a table.
func WriteDeadLetters(out io.Writer, letters []deadletters.Letter) {
	if len(letters) == 0 {
		fmt.Fprintln(out, "no dead letters")
		return
	}
	tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tCONSUMER\tKIND\tORGANIZATION\tDELIVERIES\tSET ASIDE\tREASON")
	for _, l := range letters {
		org := l.OrganizationID
		if org == "" {
			org = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n", l.Sequence, l.Consumer, l.Kind, org, l.Deliveries,
			l.DeadLetteredAt.Local().Format(time.DateTime), cut(l.Reason, 72))
	}
	_ = tw.Flush()
}

// WriteDeadLetter prints one dead letter, field by field.
func WriteDeadLetter(out io.Writer, d deadletters.Detail) {
	tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
	row := func(k string, v any) {
		if s := fmt.Sprint(v); s != "" && s != "0" {
			fmt.Fprintf(tw, "%s\t%s\n", k, s)
		}
	}
	row("sequence", d.Sequence)
	row("consumer", d.Consumer)
	row("reason", d.Reason)
	row("origin", strings.TrimSpace(d.OriginSubject+" ("+d.OriginStream+" "+strconv.FormatUint(d.OriginSequence, 10)+")"))
	row("organization", d.OrganizationID)
	row("deliveries", d.Deliveries)
	row("set aside", d.DeadLetteredAt.Local().Format(time.DateTime))
	row("payload", fmt.Sprintf("%s, %d bytes", d.Kind, d.Size))
	row("headers", strings.Join(d.Headers, ", "))
	row("decode error", d.DecodeError)
	if e := d.Event; e != nil {
		b, _ := json.Marshal(e)
		var fields map[string]any
		_ = json.Unmarshal(b, &fields)
		for _, k := range eventFieldOrder {
			if v, ok := fields[k]; ok {
				row("  "+k, v)
			}
		}
	}
	_ = tw.Flush()
}

// eventFieldOrder is the order show prints an event's fields in.
var eventFieldOrder = []string{"id", "at", "table", "row", "operation", "message", "changedColumns", "readBack",
	"contact", "value", "previous", "rule", "confidence", "cause", "source", "member", "company", "positions",
	"user", "enabled", "kind", "contacts"}

func cut(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
