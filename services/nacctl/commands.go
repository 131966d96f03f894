package nacctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"

	"github.com/notatcompany/notatcompany/services/nacctl/provision"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// ErrDrift is --check finding a difference from the desired state.
var ErrDrift = errors.New("the organization differs from the desired state")

var errHelp = flag.ErrHelp

// Exit codes: 0 done (or no drift), 1 drift found by --check, 2 anything
// else (a Dataverse error, a conflict, a bad command line).
func ExitCode(err error) int {
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, ErrDrift):
		return 1
	}
	return 2
}

// Run executes the configured command against client, writing the plan,
// progress and summary to out.
func Run(ctx context.Context, cfg Config, client *dataverse.Client, out io.Writer) error {
	who, err := WhoAmI(ctx, client)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", cfg.URL, err)
	}
	fmt.Fprintf(out, "%s %s: organization %s, as user %s\n", cfg.Command, cfg.URL, who.OrganizationID, who.UserID)
	mode := provision.Apply
	if cfg.DryRun || cfg.Check {
		mode = provision.DryRun
	}
	runner := &provision.Runner{Client: client, Config: cfg.Provision}
	if mode == provision.Apply {
		runner.Progress = func(it provision.Item) {
			status := "done"
			switch {
			case it.Err != nil:
				status = "FAILED"
			case !it.Drifted():
				status = "ok"
			case it.Action == provision.Conflict:
				status = "left alone"
			}
			fmt.Fprintf(out, "  %-9s  %s: %s ... %s\n", it.Action, it.Component, it.Detail, status)
		}
	}
	var res provision.Result
	if cfg.Command == CmdDeprovision {
		res, err = runner.Deprovision(ctx, mode)
	} else {
		res, err = runner.Provision(ctx, mode)
	}
	switch {
	case cfg.Check:
		if drifted := res.Drifted(); len(drifted) > 0 {
			provision.WriteTable(out, drifted)
			fmt.Fprintf(out, "drift: %d of %d components differ from the desired state\n", len(drifted), len(res.Items))
			if err == nil || errors.Is(err, provision.ErrConflict) {
				return ErrDrift
			}
		} else if err == nil {
			fmt.Fprintf(out, "no drift: all %d components are as desired\n", len(res.Items))
		}
	case cfg.DryRun:
		provision.WriteTable(out, res.Items)
		fmt.Fprintln(out, "plan:", res.Summary(true))
		if errors.Is(err, provision.ErrConflict) {
			return nil // a plan with conflicts is still a plan
		}
	default:
		fmt.Fprintln(out, "summary:", res.Summary(false))
	}
	if err != nil {
		var ce *provision.ComponentError
		if errors.As(err, &ce) {
			done := 0
			for _, it := range res.Items {
				if it.Err == nil && it.Drifted() && it.Action != provision.Conflict {
					done++
				}
			}
			return fmt.Errorf("%w (%d changes were made before it; run again to finish)", err, done)
		}
		if errors.Is(err, provision.ErrConflict) {
			return fmt.Errorf("%d components in conflict, left alone: %w", res.Count(provision.Conflict), err)
		}
	}
	return err
}

// Identity is who the credential is in which organization.
type Identity struct {
	OrganizationID string `json:"OrganizationId"`
	UserID         string `json:"UserId"`
	BusinessUnitID string `json:"BusinessUnitId"`
}

// WhoAmI asks Dataverse who the credential is.
func WhoAmI(ctx context.Context, c *dataverse.Client) (Identity, error) {
	var id Identity
	op, _ := dataverse.Operation("WhoAmI")
	err := c.Get(ctx, op, url.Values{}, nil, &id)
	return id, err
}
