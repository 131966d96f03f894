package provision

import (
	"context"
	"strings"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/fetchxml"
)

// viewSuffix tells our views from another product's of the same name
// (LinkedIn's "All Contacts Not at Company").
const viewSuffix = " (notatcompany)"

func findViews(ctx context.Context, c *dataverse.Client, comp, table, name string) ([]map[string]any, error) {
	return list(ctx, c, comp, "savedqueries", query(
		"returnedtypecode eq "+dataverse.Quote(table)+" and querytype eq 0 and name eq "+dataverse.Quote(name),
		"savedqueryid,name,description,fetchxml,layoutxml,ismanaged,statecode"))
}

func ours(row map[string]any) bool {
	return row["ismanaged"] != true && strings.HasSuffix(str(row, "description"), marker)
}

// viewsComponent: each view found by name among the public views of its
// table; ours (by the description's marker) is kept as desired, anyone
// else's is never touched, and ours then takes the name with a suffix.
func viewsComponent(ctx context.Context, r *run) ([]planned, error) {
	var out []planned
	for _, v := range Views(r.cfg.FlagColumn) {
		comp := "view " + v.Name
		var found map[string]any
		taken := false
		for _, candidate := range []string{v.Name, v.Name + viewSuffix} {
			rows, err := findViews(ctx, r.c, comp, v.Table, candidate)
			if err != nil {
				return nil, err
			}
			v.Name = candidate
			for _, row := range rows {
				if ours(row) {
					found = row
				}
			}
			taken = found == nil && len(rows) > 0 // someone else's: try the suffix
			if !taken {
				break
			}
		}
		switch {
		case taken:
			out = append(out, planned{Item: Item{Component: comp, Action: Conflict,
				Detail: "views of this name (and with" + viewSuffix + ") exist and are not notatcompany's"}})
		case found == nil:
			out = append(out, planned{Item: Item{Component: comp, Action: Create, Detail: v.Table + " public view " + quoteName(v.Name)}, apply: createView(r, v), publishes: v.Table})
		default:
			out = append(out, reconcileView(r, comp, v, found))
		}
	}
	return out, nil
}

func quoteName(s string) string { return `"` + s + `"` }

func createView(r *run, v View) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		set, _ := dataverse.Set("savedqueries")
		_, err := r.c.Create(ctx, set, map[string]any{"name": v.Name, "description": v.Description,
			"returnedtypecode": v.Table, "querytype": 0, "isdefault": false,
			"fetchxml": v.FetchXML, "layoutxml": v.LayoutXML}, r.inSolution())
		return err
	}
}

func reconcileView(r *run, comp string, v View, row map[string]any) planned {
	var drift []string
	patch := map[string]any{}
	if !fetchxml.Equivalent(str(row, "fetchxml"), v.FetchXML) {
		drift = append(drift, "query")
		patch["fetchxml"] = v.FetchXML
	}
	if squash(str(row, "layoutxml")) != squash(v.LayoutXML) {
		drift = append(drift, "columns")
		patch["layoutxml"] = v.LayoutXML
	}
	if st, _ := num(row, "statecode"); st != 0 {
		drift = append(drift, "deactivated")
		patch["statecode"], patch["statuscode"] = 0, 1
	}
	id := str(row, "savedqueryid")
	if len(drift) == 0 {
		return planned{Item: Item{Component: comp, Action: Unchanged, Detail: "id " + id}}
	}
	p := planned{Item: Item{Component: comp, Action: Update, Detail: "restore " + strings.Join(drift, ", ") + " (id " + id + ")"}, publishes: v.Table}
	p.apply = func(ctx context.Context) error {
		res, err := dataverse.RowOf("savedqueries", id)
		if err != nil {
			return err
		}
		return r.c.Update(ctx, res, patch, nil)
	}
	return p
}

// squash drops the whitespace between a layout's elements.
func squash(s string) string {
	return strings.NewReplacer("\n", "", "\t", "", "> <", "><", " />", "/>", "'", `"`).Replace(strings.TrimSpace(s))
}

// ViewIDs returns the ids of the four views by name, as provisioned.
func ViewIDs(ctx context.Context, c *dataverse.Client, flag string) (map[string]string, error) {
	ids := map[string]string{}
	for _, v := range Views(flag) {
		for _, name := range []string{v.Name, v.Name + viewSuffix} {
			rows, err := findViews(ctx, c, "view "+v.Name, v.Table, name)
			if err != nil {
				return nil, err
			}
			for _, row := range rows {
				if ours(row) {
					ids[v.Name] = str(row, "savedqueryid")
				}
			}
		}
	}
	return ids, nil
}
