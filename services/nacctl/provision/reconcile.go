package provision

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// Mode is what a run does with its plan.
type Mode int

// Modes.
const (
	Apply  Mode = iota // change what differs
	DryRun             // plan only
)

// Runner provisions one organization through its Web API.
type Runner struct {
	Client *dataverse.Client
	Config Config
	// Progress, when set, is told of each item once it is decided and,
	// in Apply mode, done.
	Progress func(Item)
}

// planned is an item with what applying it takes.
type planned struct {
	Item
	apply func(ctx context.Context) error
	// publishes is the table whose customizations the change must publish.
	publishes string
}

// run is the state of one provisioning run: ids found or created on the
// way, which later components need.
type run struct {
	c           *dataverse.Client
	cfg         Config
	apply       bool
	publisherID string
	endpointID  string
	publish     map[string]bool
}

type componentFunc func(ctx context.Context, r *run) ([]planned, error)

// Provision reconciles the organization with cfg, in order: publisher,
// solution, flag column, evidence columns, views, service endpoint, steps,
// publish. The error names the component that failed and how; what was
// done before it is in the result, and a rerun continues from there.
func (p *Runner) Provision(ctx context.Context, mode Mode) (Result, error) {
	r := &run{c: p.Client, cfg: p.Config, apply: mode == Apply, publish: map[string]bool{}}
	comps := []componentFunc{publisher, solution, flagColumnComponent, evidenceComponent, viewsComponent, endpointComponent, stepsComponent}
	return p.execute(ctx, r, comps, true)
}

func (p *Runner) execute(ctx context.Context, r *run, comps []componentFunc, publish bool) (Result, error) {
	var res Result
	conflicts := false
	report := func(it Item) {
		res.Items = append(res.Items, it)
		if p.Progress != nil {
			p.Progress(it)
		}
	}
	for _, comp := range comps {
		items, err := comp(ctx, r)
		if err != nil {
			return res, err
		}
		for _, it := range items {
			if it.Action == Conflict {
				conflicts = true
			}
			if r.apply && it.apply != nil && (it.Action == Create || it.Action == Update || it.Action == Delete) {
				if err := it.apply(ctx); err != nil {
					it.Err = err
					report(it.Item)
					return res, &ComponentError{Component: it.Component, Err: err}
				}
			}
			if it.publishes != "" && (it.Action == Create || it.Action == Update) {
				r.publish[it.publishes] = true
			}
			report(it.Item)
		}
	}
	if publish {
		entities := slices.Sorted(func(yield func(string) bool) {
			for e := range r.publish {
				if !yield(e) {
					return
				}
			}
		})
		it := Item{Component: "publish", Action: Unchanged, Detail: "nothing changed that needs publishing"}
		if len(entities) > 0 {
			it.Action, it.Detail = Update, "PublishXml of "+strings.Join(entities, ", ")
			if r.apply {
				if err := publishEntities(ctx, r.c, entities); err != nil {
					it.Err = err
					report(it)
					return res, &ComponentError{Component: "publish", Err: err}
				}
				res.Published = entities
			}
		}
		report(it)
	}
	if conflicts {
		return res, ErrConflict
	}
	return res, nil
}

func publishEntities(ctx context.Context, c *dataverse.Client, entities []string) error {
	var b strings.Builder
	b.WriteString("<importexportxml><entities>")
	for _, e := range entities {
		b.WriteString("<entity>" + e + "</entity>") // logical names, validated
	}
	b.WriteString("</entities></importexportxml>")
	op, _ := dataverse.Operation("PublishXml")
	return c.Invoke(ctx, op, map[string]any{"ParameterXml": b.String()}, nil, nil)
}

// query builds the query of a collection read.
func query(filter, sel string) url.Values {
	q := url.Values{}
	if filter != "" {
		q.Set("$filter", filter)
	}
	if sel != "" {
		q.Set("$select", sel)
	}
	return q
}

// list reads a collection of set; a failure is the component's.
func list(ctx context.Context, c *dataverse.Client, component, set string, q url.Values) ([]map[string]any, error) {
	res, err := dataverse.Set(set)
	if err != nil {
		return nil, &ComponentError{Component: component, Err: err}
	}
	rows, err := c.List(ctx, res, q, nil, 0)
	if err != nil {
		return nil, &ComponentError{Component: component, Err: fmt.Errorf("read %s: %w", set, err)}
	}
	return rows, nil
}

func str(row map[string]any, col string) string { s, _ := row[col].(string); return s }

func num(row map[string]any, col string) (int, bool) {
	f, ok := row[col].(float64)
	return int(f), ok
}

func publisher(ctx context.Context, r *run) ([]planned, error) {
	const comp = "publisher"
	rows, err := list(ctx, r.c, comp, "publishers", query("uniquename eq "+dataverse.Quote(r.cfg.Publisher),
		"publisherid,uniquename,customizationprefix,customizationoptionvalueprefix"))
	if err != nil {
		return nil, err
	}
	name := comp + " " + r.cfg.Publisher
	if len(rows) > 0 {
		r.publisherID = str(rows[0], "publisherid")
		if got := str(rows[0], "customizationprefix"); got != r.cfg.Prefix {
			return []planned{{Item: Item{Component: name, Action: Conflict,
				Detail: fmt.Sprintf("exists with prefix %q, not %q: set NAC_PROVISION_PREFIX to %q or use another publisher", got, r.cfg.Prefix, got)}}}, nil
		}
		return []planned{{Item: Item{Component: name, Action: Unchanged, Detail: "prefix " + r.cfg.Prefix}}}, nil
	}
	p := planned{Item: Item{Component: name, Action: Create, Detail: "prefix " + r.cfg.Prefix}}
	p.apply = func(ctx context.Context) error {
		set, _ := dataverse.Set("publishers")
		id, err := r.c.Create(ctx, set, map[string]any{"uniquename": r.cfg.Publisher, "friendlyname": r.cfg.Publisher,
			"customizationprefix": r.cfg.Prefix, "customizationoptionvalueprefix": r.cfg.OptionValuePrefix,
			"description": "Publisher of notatcompany's components. " + marker}, nil)
		r.publisherID = id
		return err
	}
	return []planned{p}, nil
}

func solution(ctx context.Context, r *run) ([]planned, error) {
	const comp = "solution"
	rows, err := list(ctx, r.c, comp, "solutions", query("uniquename eq "+dataverse.Quote(r.cfg.Solution), "solutionid,uniquename,ismanaged,_publisherid_value"))
	if err != nil {
		return nil, err
	}
	name := comp + " " + r.cfg.Solution
	if len(rows) > 0 {
		switch {
		case rows[0]["ismanaged"] == true:
			return []planned{{Item: Item{Component: name, Action: Conflict, Detail: "exists as a managed solution: provisioning adds to an unmanaged one"}}}, nil
		case r.publisherID != "" && !strings.EqualFold(str(rows[0], "_publisherid_value"), r.publisherID):
			return []planned{{Item: Item{Component: name, Action: Conflict, Detail: "exists with another publisher than " + r.cfg.Publisher}}}, nil
		}
		return []planned{{Item: Item{Component: name, Action: Unchanged, Detail: "unmanaged, publisher " + r.cfg.Publisher}}}, nil
	}
	p := planned{Item: Item{Component: name, Action: Create, Detail: "unmanaged, publisher " + r.cfg.Publisher}}
	p.apply = func(ctx context.Context) error {
		pub, err := bind("publishers", r.publisherID)
		if err != nil {
			return err
		}
		set, _ := dataverse.Set("solutions")
		_, err = r.c.Create(ctx, set, map[string]any{"uniquename": r.cfg.Solution, "friendlyname": r.cfg.Solution,
			"version": "1.0.0.0", "publisherid@odata.bind": pub,
			"description": "notatcompany's columns, views and webhook registration. " + marker}, nil)
		return err
	}
	return []planned{p}, nil
}

// inSolution is the header set of every create of a component.
func (r *run) inSolution() *dataverse.RequestOptions {
	return &dataverse.RequestOptions{SolutionUniqueName: r.cfg.Solution}
}

// bind is an @odata.bind value: /set(id), the id checked to be a GUID.
func bind(set, id string) (string, error) {
	if id == "" {
		return "", errors.New("the id of the " + set + " row is unknown")
	}
	res, err := dataverse.RowOf(set, id)
	if err != nil {
		return "", err
	}
	return "/" + res.String(), nil
}
