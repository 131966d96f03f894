package provision

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// Action is what a run does, or would do, to a component.
type Action string

// Actions.
const (
	Create    Action = "create"
	Update    Action = "update"
	Delete    Action = "delete"
	Unchanged Action = "unchanged"
	Conflict  Action = "conflict"
)

// Item is one component of the plan.
type Item struct {
	Component string
	Action    Action
	Detail    string
	// Err is set when applying the item failed.
	Err error
}

// Drifted reports whether the item differs from the desired state.
func (it Item) Drifted() bool { return it.Action != Unchanged }

// Result is a run's items, in order, and what was published.
type Result struct {
	Items     []Item
	Published []string
}

// Drifted returns the items that differ from the desired state.
func (r Result) Drifted() []Item {
	var out []Item
	for _, it := range r.Items {
		if it.Drifted() {
			out = append(out, it)
		}
	}
	return out
}

// Count counts the items with action a.
func (r Result) Count(a Action) int {
	n := 0
	for _, it := range r.Items {
		if it.Action == a {
			n++
		}
	}
	return n
}

// WriteTable prints items as a table: component, action, detail.
func WriteTable(w io.Writer, items []Item) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "COMPONENT\tACTION\tDETAIL")
	for _, it := range items {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", it.Component, it.Action, it.Detail)
	}
	_ = tw.Flush()
}

// Summary is the one-line account of a run.
func (r Result) Summary(dryRun bool) string {
	if len(r.Drifted()) == 0 {
		return fmt.Sprintf("nothing to do: all %d components are as desired", len(r.Items))
	}
	verb := map[bool][3]string{false: {"created", "updated", "deleted"}, true: {"to create", "to update", "to delete"}}[dryRun]
	s := fmt.Sprintf("%d %s, %d %s, %d %s, %d unchanged, %d conflicts",
		r.Count(Create), verb[0], r.Count(Update), verb[1], r.Count(Delete), verb[2], r.Count(Unchanged), r.Count(Conflict))
	if len(r.Published) > 0 {
		s += "; published " + strings.Join(r.Published, ", ")
	}
	return s
}

// ErrConflict is returned when a component exists in a form provisioning
// will not change; the items say which.
var ErrConflict = errors.New("conflicts need an administrator's decision")

// ComponentError is a failure of one component, with Dataverse's code and
// message when Dataverse refused.
type ComponentError struct {
	Component string
	Err       error
}

func (e *ComponentError) Error() string {
	var se *dataverse.StatusError
	if errors.As(e.Err, &se) {
		return fmt.Sprintf("%s: Dataverse answered %d, code %s: %s", e.Component, se.Status, se.Code, se.Message)
	}
	return e.Component + ": " + e.Err.Error()
}

func (e *ComponentError) Unwrap() error { return e.Err }
