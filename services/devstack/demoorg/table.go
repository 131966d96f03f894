package demoorg

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Row is one contact as Dynamics holds it once the pipeline is done: the
// flag and the evidence columns the writer filled (crmschema.Evidence).
type Row struct {
	Contact string
	Account string
	Case    Case
	Flag    int
	// Reason and SuggestedCompany are the evidence columns' values, ""
	// when empty (null).
	Reason           string
	SuggestedCompany string
}

// Table is the demo's contacts in the cast's order.
type Table []Row

// FlagName is a flag value as Dynamics labels it.
func FlagName(v int) string {
	switch v {
	case 0:
		return "No Feedback"
	case 1:
		return "Not at Company"
	case 2:
		return "Ignore"
	}
	return fmt.Sprintf("unknown (%d)", v)
}

// Render writes the table for a terminal.
func (t Table) Render(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CONTACT\tACCOUNT\tCASE\tFLAG\tREASON\tSUGGESTED COMPANY")
	for _, r := range t {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d %s\t%s\t%s\n", r.Contact, r.Account, r.Case, r.Flag, FlagName(r.Flag), dash(r.Reason), dash(r.SuggestedCompany))
	}
	_ = tw.Flush()
}

// Counts are how many rows have each flag value.
func (t Table) Counts() map[int]int {
	n := map[int]int{}
	for _, r := range t {
		n[r.Flag]++
	}
	return n
}

// OpportunityRow is one of the demo's opportunities and whether the
// provisioned view "All Opportunities at Risk – Contact Left" lists it.
type OpportunityRow struct {
	Opportunity string
	Account     string
	Contact     string
	AtRisk      bool
}

// RenderOpportunities writes the opportunities for a terminal.
func RenderOpportunities(w io.Writer, rows []OpportunityRow) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "OPPORTUNITY\tACCOUNT\tCONTACT\tAT RISK (the view)")
	for _, r := range rows {
		risk := "no"
		if r.AtRisk {
			risk = "yes: the contact left"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Opportunity, r.Account, r.Contact, risk)
	}
	_ = tw.Flush()
}

func dash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "–"
	}
	return s
}
