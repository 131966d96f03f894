package provision

import (
	"context"
	"encoding/xml"
	"fmt"
	"slices"
	"strings"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// authTypes are the serviceendpoint.authtype values of the three webhook
// authentications.
var authTypes = map[string]int{AuthWebhookKey: 4, AuthHTTPHeader: 5, AuthHTTPQueryString: 6}

// authValue is the endpoint's authvalue: the raw key for WebhookKey, a
// settings document for the other two.
func authValue(e Endpoint) string {
	if e.Auth == AuthWebhookKey {
		return e.Key
	}
	var name, key strings.Builder
	_ = xml.EscapeText(&name, []byte(e.Name))
	_ = xml.EscapeText(&key, []byte(e.Key))
	return `<settings><setting name="` + name.String() + `" value="` + key.String() + `"/></settings>`
}

func findEndpoint(ctx context.Context, r *run, comp string) (map[string]any, error) {
	rows, err := list(ctx, r.c, comp, "serviceendpoints", query("contract eq 8 and name eq "+dataverse.Quote(r.cfg.EndpointName),
		"serviceendpointid,name,url,authtype,messageformat"))
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	if id := str(rows[0], "serviceendpointid"); !dataverse.IsGUID(id) {
		return nil, &ComponentError{Component: comp, Err: fmt.Errorf("serviceendpointid %q is not a GUID", id)}
	}
	return rows[0], nil
}

func endpointComponent(ctx context.Context, r *run) ([]planned, error) {
	comp := "service endpoint " + r.cfg.EndpointName
	row, err := findEndpoint(ctx, r, comp)
	if err != nil {
		return nil, err
	}
	e := r.cfg.Endpoint
	want := map[string]any{"url": e.URL, "authtype": authTypes[e.Auth], "messageformat": 2}
	detail := e.URL + ", " + e.Auth
	if row == nil {
		p := planned{Item: Item{Component: comp, Action: Create, Detail: "webhook to " + detail}}
		p.apply = func(ctx context.Context) error {
			body := map[string]any{"name": r.cfg.EndpointName, "description": "notatcompany change webhook. " + marker,
				"contract": 8, "authvalue": authValue(e)}
			for k, v := range want {
				body[k] = v
			}
			set, _ := dataverse.Set("serviceendpoints")
			id, err := r.c.Create(ctx, set, body, r.inSolution())
			r.endpointID = id
			return err
		}
		return []planned{p}, nil
	}
	r.endpointID = str(row, "serviceendpointid")
	var drift []string
	if str(row, "url") != e.URL {
		drift = append(drift, "url "+str(row, "url")+" → "+e.URL)
	}
	if at, _ := num(row, "authtype"); at != authTypes[e.Auth] {
		drift = append(drift, fmt.Sprintf("authtype %d → %d (%s)", at, authTypes[e.Auth], e.Auth))
	}
	if mf, _ := num(row, "messageformat"); mf != 2 {
		drift = append(drift, "message format → JSON")
	}
	if len(drift) == 0 && !r.cfg.SetKey {
		return []planned{{Item: Item{Component: comp, Action: Unchanged,
			Detail: detail + " (Dataverse never returns the key: --set-key writes it again)"}}}, nil
	}
	if r.cfg.SetKey {
		drift = append(drift, "key written")
	}
	p := planned{Item: Item{Component: comp, Action: Update, Detail: strings.Join(drift, "; ")}}
	p.apply = func(ctx context.Context) error {
		res, err := dataverse.RowOf("serviceendpoints", r.endpointID)
		if err != nil {
			return err
		}
		body := map[string]any{"authvalue": authValue(e)} // a new auth type needs its value
		for k, v := range want {
			body[k] = v
		}
		return r.c.Update(ctx, res, body, nil)
	}
	return []planned{p}, nil
}

// Deprovision removes the webhook registration: every step on our
// endpoint, then the endpoint. Columns, views and data stay: deleting a
// column deletes its data, and views are an administrator's to remove.
func (p *Runner) Deprovision(ctx context.Context, mode Mode) (Result, error) {
	r := &run{c: p.Client, cfg: p.Config, apply: mode == Apply, publish: map[string]bool{}}
	return p.execute(ctx, r, []componentFunc{unregister}, false)
}

func unregister(ctx context.Context, r *run) ([]planned, error) {
	comp := "service endpoint " + r.cfg.EndpointName
	row, err := findEndpoint(ctx, r, comp)
	if err != nil {
		return nil, err
	}
	if row == nil {
		return []planned{{Item: Item{Component: comp, Action: Unchanged, Detail: "not registered: nothing to remove"}}}, nil
	}
	r.endpointID = str(row, "serviceendpointid")
	reg, err := readRegistration(ctx, r, "steps")
	if err != nil {
		return nil, err
	}
	var out []planned
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range reg.steps {
			if !yield(n) {
				return
			}
		}
	}) {
		id := str(reg.steps[name], "sdkmessageprocessingstepid")
		out = append(out, planned{Item: Item{Component: "step " + strings.TrimPrefix(name, "notatcompany: "), Action: Delete, Detail: "id " + id + ", with its image"},
			apply: deleteRow(r, "sdkmessageprocessingsteps", id)})
	}
	out = append(out, planned{Item: Item{Component: comp, Action: Delete, Detail: str(row, "url")},
		apply: deleteRow(r, "serviceendpoints", r.endpointID)})
	return out, nil
}
