package nacctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/notatcompany/notatcompany/services/shared/conf"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// Commands that read or review evaluations through the admin API.
const (
	CmdExplain = "explain"
	CmdList    = "list"
	CmdReview  = "review"
)

// IsExplainCommand reports whether args name explain, list or review.
func IsExplainCommand(args []string) bool {
	return len(args) > 0 && (args[0] == CmdExplain || args[0] == CmdList || args[0] == CmdReview)
}

// Lists nacctl list shows, and review actions.
var (
	listKinds     = map[string]bool{"flagged": true, "at-risk": true, "candidates": true}
	reviewActions = map[string]bool{"approve": true, "reject": true}
)

// ExplainConfig of nacctl explain, list and review.
type ExplainConfig struct {
	Command string
	// Kind is the list (flagged, at-risk, candidates) or the review
	// action (approve, reject).
	Kind     string
	Contact  string
	Org      string
	APIURL   string
	Token    string
	JSON     bool
	Limit    int
	Cursor   string
	All      bool
	Reviewer string
}

// ParseExplainConfig reads the command's arguments (they come before the
// flags), flags and environment:
//
//	nacctl explain <contact> --org <org> [--json]
//	nacctl list flagged|at-risk|candidates --org <org> [--limit N] [--cursor C] [--all] [--json]
//	nacctl review approve|reject <contact> --org <org> --reviewer <who>
func ParseExplainConfig(args []string, getenv func(string) string, out io.Writer) (ExplainConfig, error) {
	c := ExplainConfig{Command: args[0]}
	want := map[string]int{CmdExplain: 1, CmdList: 1, CmdReview: 2}[c.Command]
	rest := args[1:]
	var pos []string
	for len(rest) > 0 && len(pos) < want && !strings.HasPrefix(rest[0], "-") {
		pos, rest = append(pos, rest[0]), rest[1:]
	}
	p := conf.NewParser("nacctl "+c.Command, getenv, out)
	p.String(&c.Org, "org", "NAC_ORG", "", "the Dataverse OrganizationId")
	p.String(&c.APIURL, "api-url", "NAC_API_URL", "http://127.0.0.1:8080", "the notatcompany public API (its /admin/...)")
	p.Secret(&c.Token, "NAC_ADMIN_TOKEN")
	switch c.Command {
	case CmdExplain:
		p.Bool(&c.JSON, "json", "NAC_JSON", false, "print the admin API's answer as JSON")
	case CmdList:
		p.Bool(&c.JSON, "json", "NAC_JSON", false, "print the admin API's pages as JSON, one a line")
		p.Int(&c.Limit, "limit", "NAC_LIMIT", 50, "items a page holds at most (1-200)")
		p.String(&c.Cursor, "cursor", "NAC_CURSOR", "", "the page to start at (a previous page's next)")
		p.Bool(&c.All, "all", "NAC_ALL", false, "follow every page")
	case CmdReview:
		p.String(&c.Reviewer, "reviewer", "NAC_REVIEWER", "", "who reviews: recorded on the decision and in the audit trail")
	}
	if err := p.Parse(rest); err != nil {
		return c, err
	}
	switch c.Command {
	case CmdExplain:
		p.Check(len(pos) == 1, "usage: nacctl explain <contact> --org <org> [--json]")
		if len(pos) == 1 {
			c.Contact = pos[0]
		}
	case CmdList:
		p.Check(len(pos) == 1 && listKinds[pos[0]], "usage: nacctl list flagged|at-risk|candidates --org <org>")
		if len(pos) == 1 {
			c.Kind = pos[0]
		}
		p.Check(c.Limit >= 1 && c.Limit <= 200, "--limit=%d: want 1-200", c.Limit)
	case CmdReview:
		p.Check(len(pos) == 2 && reviewActions[pos[0]], "usage: nacctl review approve|reject <contact> --org <org> --reviewer <who>")
		if len(pos) == 2 {
			c.Kind, c.Contact = pos[0], pos[1]
		}
		p.Check(strings.TrimSpace(c.Reviewer) != "", "--reviewer (NAC_REVIEWER): required, who reviews")
	}
	c.Org, c.Contact = strings.ToLower(c.Org), strings.ToLower(c.Contact)
	p.Check(dataverse.IsGUID(c.Org), "--org=%q: want the organization's GUID", c.Org)
	p.Check(c.Command == CmdList || dataverse.IsGUID(c.Contact), "contact %q: want the contact's GUID", c.Contact)
	u, err := url.Parse(c.APIURL)
	p.Check(err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "", "NAC_API_URL=%q: want http(s)://host[:port]", c.APIURL)
	p.Check(c.Token != "", "NAC_ADMIN_TOKEN (or _FILE): required")
	return c, p.Err()
}

// RunExplain runs explain, list or review against the admin API.
func RunExplain(ctx context.Context, cfg ExplainConfig, hc *http.Client, out io.Writer) error {
	api := newAdminClient(hc, cfg.APIURL, cfg.Token, "")
	org := "/admin/orgs/" + cfg.Org
	switch cfg.Command {
	case CmdExplain:
		raw, err := api.raw(ctx, http.MethodGet, org+"/contacts/"+cfg.Contact, nil)
		if err != nil {
			return err
		}
		if cfg.JSON {
			return indentJSON(out, raw)
		}
		var x explanation
		if err := json.Unmarshal(raw, &x); err != nil {
			return fmt.Errorf("decode the explanation: %w", err)
		}
		writeExplanation(out, x)
		return nil
	case CmdList:
		return runList(ctx, api, cfg, org, out)
	default:
		body, _ := json.Marshal(map[string]string{"reviewer": cfg.Reviewer})
		raw, err := api.raw(ctx, http.MethodPost, org+"/candidates/"+cfg.Contact+"/"+cfg.Kind, body)
		if err != nil {
			return err
		}
		var acc struct {
			EventID string `json:"eventId"`
		}
		_ = json.Unmarshal(raw, &acc)
		fmt.Fprintf(out, "%s of contact %s by %s requested (%s); the validator applies it to the evidence as it stands, see nacctl explain %s\n",
			cfg.Kind, cfg.Contact, cfg.Reviewer, acc.EventID, cfg.Contact)
		return nil
	}
}

func runList(ctx context.Context, api adminClient, cfg ExplainConfig, org string, out io.Writer) error {
	cursor, header := cfg.Cursor, true
	for {
		q := url.Values{"limit": {fmt.Sprint(cfg.Limit)}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		raw, err := api.raw(ctx, http.MethodGet, org+"/"+cfg.Kind+"?"+q.Encode(), nil)
		if err != nil {
			return err
		}
		var page listPage
		if err := json.Unmarshal(raw, &page); err != nil {
			return fmt.Errorf("decode the page: %w", err)
		}
		if cfg.JSON {
			fmt.Fprintf(out, "%s\n", bytes.TrimSpace(raw))
		} else {
			writeList(out, cfg.Kind, page, header)
			header = false
		}
		if page.Next == "" {
			return nil
		}
		if !cfg.All {
			if !cfg.JSON {
				fmt.Fprintf(out, "more: --cursor %s (or --all)\n", page.Next)
			}
			return nil
		}
		cursor = page.Next
	}
}

func indentJSON(out io.Writer, raw []byte) error {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return err
	}
	b.WriteByte('\n')
	_, err := out.Write(b.Bytes())
	return err
}
