package nacctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/notatcompany/notatcompany/services/shared/conf"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/deadletters"
)

// CmdDLQ handles dead letters through the running service's admin API:
// nacctl dlq list|show|redrive|discard.
const CmdDLQ = "dlq"

// Subcommands of nacctl dlq.
const (
	DLQList    = "list"
	DLQShow    = "show"
	DLQRedrive = "redrive"
	DLQDiscard = "discard"
)

// IsDLQCommand reports whether args name nacctl dlq.
func IsDLQCommand(args []string) bool { return len(args) > 0 && args[0] == CmdDLQ }

// DLQUsage is nacctl dlq's help.
const DLQUsage = `usage: nacctl dlq <subcommand> [flags]

  list [--consumer C] [--org ORG] [--after SEQ] [--limit N]
                          dead letters, oldest first, a page at a time
  show SEQ                one dead letter: reason, origin, deliveries, what its payload is about
  redrive SEQ             publish it again to where it came from, then delete it
  redrive --consumer C | --org ORG | --all
                          every dead letter picked, until none is left
  discard SEQ | --consumer C | --org ORG | --all
                          delete (recorded in the audit trail)

--json prints the admin API's JSON. NAC_API_URL and NAC_ADMIN_TOKEN as for backfill;
--actor (NAC_ACTOR, default $USER) names you in the audit trail.
`

// DLQConfig of one nacctl dlq invocation.
type DLQConfig struct {
	Sub      string
	Sequence uint64 // show, and redrive or discard of one
	Consumer string
	Org      string
	All      bool
	After    uint64
	Limit    int
	JSON     bool
	APIURL   string
	Token    string
	Actor    string
}

// ParseDLQConfig reads nacctl dlq's subcommand, sequence, flags and environment.
func ParseDLQConfig(args []string, getenv func(string) string, out io.Writer) (DLQConfig, error) {
	var c DLQConfig
	if len(args) < 2 {
		fmt.Fprint(out, DLQUsage)
		return c, fmt.Errorf("%w: nacctl dlq needs a subcommand (list, show, redrive, discard)", ErrUsage)
	}
	c.Sub, args = args[1], args[2:]
	switch c.Sub {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(out, DLQUsage)
		return c, errHelp
	case DLQList, DLQShow, DLQRedrive, DLQDiscard:
	default:
		fmt.Fprint(out, DLQUsage)
		return c, fmt.Errorf("%w: nacctl dlq %q: want list, show, redrive or discard", ErrUsage, c.Sub)
	}
	hasSeq := false
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		seq, err := strconv.ParseUint(args[0], 10, 64)
		if err != nil || seq == 0 {
			return c, fmt.Errorf("%w: %q: want a dead letter's sequence", ErrUsage, args[0])
		}
		c.Sequence, hasSeq, args = seq, true, args[1:]
	}
	p := conf.NewParser("nacctl dlq "+c.Sub, getenv, out)
	p.String(&c.APIURL, "api-url", "NAC_API_URL", "http://127.0.0.1:8080", "the notatcompany public API (its /admin/...)")
	p.Secret(&c.Token, "NAC_ADMIN_TOKEN")
	p.String(&c.Actor, "actor", "NAC_ACTOR", getenv("USER"), "who you are, for the audit trail")
	p.Bool(&c.JSON, "json", "NAC_JSON", false, "print the admin API's JSON")
	if c.Sub != DLQShow {
		p.String(&c.Consumer, "consumer", "NAC_DLQ_CONSUMER", "", "only this consumer's dead letters")
		p.String(&c.Org, "org", "NAC_ORG", "", "only the dead letters of this organization (GUID)")
	}
	after := 0
	if c.Sub == DLQList {
		p.Int(&after, "after", "NAC_DLQ_AFTER", 0, "only dead letters after this sequence (a page's next)")
		p.Int(&c.Limit, "limit", "NAC_DLQ_LIMIT", deadletters.DefaultLimit, "at most this many")
	}
	if c.Sub == DLQRedrive || c.Sub == DLQDiscard {
		p.Bool(&c.All, "all", "NAC_DLQ_ALL", false, "every dead letter")
	}
	if err := p.Parse(args); err != nil {
		return c, err
	}
	c.Org = strings.ToLower(c.Org)
	p.Check(after >= 0, "--after=%d: want a sequence, 0 or more", after)
	c.After = uint64(max(after, 0))
	p.Check(c.Org == "" || dataverse.IsGUID(c.Org), "--org=%q: want the organization's GUID", c.Org)
	u, err := url.Parse(c.APIURL)
	p.Check(err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "", "NAC_API_URL=%q: want http(s)://host[:port]", c.APIURL)
	p.Check(c.Token != "", "NAC_ADMIN_TOKEN (or _FILE): required")
	p.Check(len(c.Actor) <= 100, "--actor: at most 100 characters")
	selection := c.Consumer != "" || c.Org != "" || c.All
	switch c.Sub {
	case DLQShow:
		p.Check(hasSeq, "nacctl dlq show SEQ: the dead letter's sequence is required")
	case DLQList:
		p.Check(!hasSeq, "nacctl dlq list takes no sequence (--after pages)")
		p.Check(c.Limit >= 1 && c.Limit <= deadletters.MaxLimit, "--limit=%d: want 1-%d", c.Limit, deadletters.MaxLimit)
	default:
		p.Check(hasSeq != selection, "nacctl dlq %s: give one dead letter's sequence, or --consumer, --org or --all", c.Sub)
	}
	return c, p.Err()
}

// RunDLQ runs the subcommand against the admin API.
func RunDLQ(ctx context.Context, cfg DLQConfig, hc *http.Client, out io.Writer) error {
	api := dlqAPI{adminClient: newAdminClient(hc, cfg.APIURL, cfg.Token, cfg.Actor), cfg: cfg}
	switch {
	case cfg.Sub == DLQList:
		return listDeadLetters(ctx, api, out)
	case cfg.Sub == DLQShow:
		var d deadletters.Detail
		if err := api.call(ctx, http.MethodGet, seqPath(cfg.Sequence), nil, &d); err != nil {
			return err
		}
		if cfg.JSON {
			return printJSON(out, d)
		}
		WriteDeadLetter(out, d)
		return nil
	case cfg.Sequence != 0:
		return actOnOne(ctx, api, out)
	}
	return actOnAll(ctx, api, out)
}

func seqPath(seq uint64) string { return "/admin/deadletters/" + strconv.FormatUint(seq, 10) }

func listDeadLetters(ctx context.Context, api dlqAPI, out io.Writer) error {
	q := url.Values{}
	if api.cfg.Consumer != "" {
		q.Set("consumer", api.cfg.Consumer)
	}
	if api.cfg.Org != "" {
		q.Set("org", api.cfg.Org)
	}
	if api.cfg.After > 0 {
		q.Set("after", strconv.FormatUint(api.cfg.After, 10))
	}
	q.Set("limit", strconv.Itoa(api.cfg.Limit))
	var page deadletters.Page
	if err := api.call(ctx, http.MethodGet, "/admin/deadletters?"+q.Encode(), nil, &page); err != nil {
		return err
	}
	if api.cfg.JSON {
		return printJSON(out, page)
	}
	WriteDeadLetters(out, page.DeadLetters)
	if page.Next != 0 {
		fmt.Fprintf(out, "more may follow: nacctl dlq list --after %d\n", page.Next)
	}
	return nil
}

func actOnOne(ctx context.Context, api dlqAPI, out io.Writer) error {
	var o deadletters.Outcome
	var err error
	if api.cfg.Sub == DLQRedrive {
		err = api.call(ctx, http.MethodPost, seqPath(api.cfg.Sequence)+"/redrive", nil, &o)
	} else {
		err = api.call(ctx, http.MethodDelete, seqPath(api.cfg.Sequence), nil, &o)
	}
	if err != nil {
		return err
	}
	if api.cfg.JSON {
		return printJSON(out, o)
	}
	fmt.Fprintln(out, OutcomeLine(o))
	return nil
}

// actOnAll redrives or discards what the selection picks, a request at a
// time, until nothing more matches or one fails.
func actOnAll(ctx context.Context, api dlqAPI, out io.Writer) error {
	sel := map[string]any{"limit": deadletters.MaxLimit}
	if api.cfg.Consumer != "" {
		sel["consumer"] = api.cfg.Consumer
	}
	if api.cfg.Org != "" {
		sel["organizationId"] = api.cfg.Org
	}
	if api.cfg.All {
		sel["all"] = true
	}
	total := deadletters.BulkResult{Action: api.cfg.Sub, Outcomes: []deadletters.Outcome{}}
	counts := map[string]int{}
	for {
		var res deadletters.BulkResult
		if err := api.call(ctx, http.MethodPost, "/admin/deadletters/"+api.cfg.Sub, sel, &res); err != nil {
			return err
		}
		total.Done += res.Done
		total.Outcomes = append(total.Outcomes, res.Outcomes...)
		total.UpTo = res.UpTo
		for _, o := range res.Outcomes {
			counts[o.Outcome]++
			if !api.cfg.JSON {
				fmt.Fprintln(out, OutcomeLine(o))
			}
		}
		if res.Next == 0 || counts[deadletters.OutcomeFailed] > 0 {
			break
		}
		sel["after"], sel["upTo"] = res.Next, res.UpTo
	}
	if api.cfg.JSON {
		if err := printJSON(out, total); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(out, "%s: %d done, %d superseded, %d without origin, %d failed\n", api.cfg.Sub, total.Done,
			counts[deadletters.OutcomeSuperseded], counts[deadletters.OutcomeNoOrigin], counts[deadletters.OutcomeFailed])
	}
	if counts[deadletters.OutcomeFailed] > 0 {
		return errors.New("a dead letter failed; run the same command again to go on")
	}
	return nil
}

// dlqAPI calls the admin API as the configured admin.
type dlqAPI struct {
	adminClient
	cfg DLQConfig
}
