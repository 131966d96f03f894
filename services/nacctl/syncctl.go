package nacctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/conf"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/syncjobs"
)

// Commands that ask the running service for a table read.
const (
	CmdBackfill = "backfill"
	CmdSync     = "sync"
)

// IsSyncCommand reports whether args name backfill or sync.
func IsSyncCommand(args []string) bool {
	return len(args) > 0 && (args[0] == CmdBackfill || args[0] == CmdSync)
}

// SyncConfig of nacctl backfill and nacctl sync: they go through the admin
// API of the running service, which holds the Dataverse credentials.
type SyncConfig struct {
	Command string
	Org     string
	APIURL  string
	Token   string
	Poll    time.Duration
	Timeout time.Duration
	// Detach returns once the request is stored, without following it.
	Detach bool
}

// ParseSyncConfig reads backfill's or sync's flags and environment.
func ParseSyncConfig(args []string, getenv func(string) string, out io.Writer) (SyncConfig, error) {
	c := SyncConfig{Command: args[0]}
	p := conf.NewParser("nacctl "+c.Command, getenv, out)
	p.String(&c.Org, "org", "NAC_ORG", "", "the Dataverse OrganizationId to read")
	p.String(&c.APIURL, "api-url", "NAC_API_URL", "http://127.0.0.1:8080", "the notatcompany public API (its /admin/...)")
	p.Secret(&c.Token, "NAC_ADMIN_TOKEN")
	p.Duration(&c.Poll, "poll", "NAC_POLL", 500*time.Millisecond, "how often the progress is read")
	p.Duration(&c.Timeout, "timeout", "NAC_TIMEOUT", 6*time.Hour, "how long to follow the job")
	p.Bool(&c.Detach, "detach", "NAC_DETACH", false, "return once the request is stored")
	if err := p.Parse(args[1:]); err != nil {
		return c, err
	}
	c.Org = strings.ToLower(c.Org)
	p.Check(dataverse.IsGUID(c.Org), "--org=%q: want the organization's GUID", c.Org)
	u, err := url.Parse(c.APIURL)
	p.Check(err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "", "NAC_API_URL=%q: want http(s)://host[:port]", c.APIURL)
	p.Check(c.Token != "", "NAC_ADMIN_TOKEN (or _FILE): required")
	p.Check(c.Poll > 0 && c.Timeout > 0, "NAC_POLL and NAC_TIMEOUT: must be positive")
	return c, p.Err()
}

// RunSync asks for the job, then shows its progress until it ends and
// prints a summary; a failed job is an error.
func RunSync(ctx context.Context, cfg SyncConfig, hc *http.Client, out io.Writer) error {
	api := newAdminClient(hc, cfg.APIURL, cfg.Token, "")
	path := "/admin/orgs/" + cfg.Org + "/backfill"
	if cfg.Command == CmdSync {
		path = "/admin/orgs/" + cfg.Org + "/sync"
	}
	var acc struct {
		RequestID string `json:"requestId"`
	}
	if err := api.call(ctx, http.MethodPost, path, nil, &acc); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s of organization %s requested (%s)\n", cfg.Command, cfg.Org, acc.RequestID)
	if cfg.Detach {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	start := time.Now()
	var st syncjobs.Status
	for {
		err := api.call(ctx, http.MethodGet, "/admin/orgs/"+cfg.Org+"/sync-status", nil, &st)
		var se *adminError
		switch {
		case errors.As(err, &se) && se.status == http.StatusNotFound:
		case err != nil:
			return err
		case st.JobID == acc.RequestID:
			fmt.Fprint(out, "\r"+ProgressLine(st, time.Since(start))+"\x1b[K")
			if st.State != syncjobs.StateRunning {
				fmt.Fprintln(out)
				WriteSummary(out, st)
				if st.State == syncjobs.StateFailed {
					return fmt.Errorf("%s failed: %s", cfg.Command, st.Error)
				}
				return nil
			}
		default:
			fmt.Fprint(out, "\rwaiting for a writer replica to take the request up\x1b[K")
		}
		select {
		case <-ctx.Done():
			fmt.Fprintln(out)
			return fmt.Errorf("following the job: %w (it goes on in the service)", ctx.Err())
		case <-time.After(cfg.Poll):
		}
	}
}

// ProgressLine is one line of progress: a bar over the rows read of the
// tables' counts, rows per table, events, evaluations, flags to write, ETA.
func ProgressLine(st syncjobs.Status, elapsed time.Duration) string {
	read, total := 0, 0
	var tables []string
	for _, t := range st.Tables {
		read += t.Rows + t.Deleted
		total += max(t.Total, t.Rows+t.Deleted)
		tables = append(tables, fmt.Sprintf("%s %d", t.Name, t.Rows))
	}
	frac := 0.0
	if total > 0 {
		frac = float64(read) / float64(total)
	}
	if st.State == syncjobs.StateDone {
		frac = 1
	}
	const width = 24
	n := int(frac * width)
	bar := strings.Repeat("#", n) + strings.Repeat(".", width-n)
	eta := "ETA ?"
	switch {
	case st.State != syncjobs.StateRunning:
		eta = "in " + elapsed.Round(time.Second).String()
	case frac > 0:
		eta = "ETA " + time.Duration(float64(elapsed)*(1-frac)/frac).Round(time.Second).String()
	}
	return fmt.Sprintf("[%s] %3.0f%% %s | events %d | evaluated %d | flags to write %d | %s",
		bar, frac*100, strings.Join(tables, ", "), st.EventsPublished, st.ContactsEvaluated, st.FlagsToWrite, eta)
}

// WriteSummary prints the job's tables and totals.
func WriteSummary(out io.Writer, st syncjobs.Status) {
	tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tMODE\tROWS\tDELETED\tPAGES")
	for _, t := range st.Tables {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\n", t.Name, t.Mode, t.Rows, t.Deleted, t.Pages)
	}
	_ = tw.Flush()
	took := time.Duration(st.FinishedAt-st.StartedAt) * time.Millisecond
	fmt.Fprintf(out, "%s %s in %s: %d events published, %d contacts evaluated, %d decisions handed to the writer again, %d overrides found, %d flags still to write\n",
		st.Kind, st.State, took.Round(time.Millisecond), st.EventsPublished, st.ContactsEvaluated, st.DecisionsRewritten, st.Overrides, st.FlagsToWrite)
	fmt.Fprintf(out, "Dataverse requests: %d (%.2f%% of 6000 per 5 minutes)\n", st.Requests, float64(st.Requests)/60)
}
