package provision

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// attributeOf reads a contact column's definition; nil when absent.
func attributeOf(ctx context.Context, c *dataverse.Client, comp, logical string) (map[string]any, error) {
	res, err := dataverse.Attributes("contact")
	if err != nil {
		return nil, &ComponentError{Component: comp, Err: err}
	}
	rows, err := c.List(ctx, res, query("LogicalName eq "+dataverse.Quote(logical), "LogicalName,AttributeType,MetadataId,IsManaged"), nil, 0)
	if err != nil {
		return nil, &ComponentError{Component: comp, Err: fmt.Errorf("read the columns of contact: %w", err)}
	}
	if len(rows) == 0 {
		return nil, nil
	}
	return rows[0], nil
}

// optionValues reads the values of a choice column.
func optionValues(ctx context.Context, c *dataverse.Client, comp, logical string) ([]int, error) {
	res, err := dataverse.Attribute("contact", logical, "PicklistAttributeMetadata")
	if err != nil {
		return nil, &ComponentError{Component: comp, Err: err}
	}
	var attr struct {
		OptionSet struct {
			Options []struct {
				Value int `json:"Value"`
			} `json:"Options"`
		} `json:"OptionSet"`
	}
	q := query("", "LogicalName")
	q.Set("$expand", "OptionSet($select=Options)")
	if err := c.Get(ctx, res, q, nil, &attr); err != nil {
		return nil, &ComponentError{Component: comp, Err: fmt.Errorf("read the options of %s: %w", logical, err)}
	}
	var vals []int
	for _, o := range attr.OptionSet.Options {
		vals = append(vals, o.Value)
	}
	return vals, nil
}

func createColumn(r *run, col column) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		res, err := dataverse.Attributes("contact")
		if err != nil {
			return err
		}
		_, err = r.c.Create(ctx, res, col.body, r.inSolution())
		return err
	}
}

// flagColumnComponent: our choice column with 0, 1, 2 (created, or its
// missing values inserted, never relabelled), or LinkedIn's column when
// the organization took it over.
func flagColumnComponent(ctx context.Context, r *run) ([]planned, error) {
	flag := r.cfg.FlagColumn
	comp := "column contact." + flag
	attr, err := attributeOf(ctx, r.c, comp, flag)
	if err != nil {
		return nil, err
	}
	var out []planned
	if r.cfg.TakeOverLinkedIn {
		return takeOver(ctx, r, comp, attr)
	}
	linkedin, err := attributeOf(ctx, r.c, "column contact."+LinkedInColumn, LinkedInColumn)
	if err != nil {
		return nil, err
	}
	if linkedin != nil {
		out = append(out, planned{Item: Item{Component: "column contact." + LinkedInColumn, Action: Unchanged,
			Detail: "LinkedIn's column exists: left alone, notatcompany writes " + flag}})
	}
	if attr == nil {
		return append(out, planned{Item: Item{Component: comp, Action: Create, Detail: "choice 0 No Feedback, 1 Not at Company, 2 Ignore; on no form"},
			apply: createColumn(r, flagColumn(flag)), publishes: "contact"}), nil
	}
	if t := str(attr, "AttributeType"); t != "Picklist" {
		return append(out, planned{Item: Item{Component: comp, Action: Conflict,
			Detail: fmt.Sprintf("exists as %s, not a choice: never changed or deleted by provisioning (deleting a column deletes its data)", t)}}), nil
	}
	have, err := optionValues(ctx, r.c, comp, flag)
	if err != nil {
		return nil, err
	}
	var missing []int
	for _, o := range flagOptions {
		if !slices.Contains(have, o.Value) {
			missing = append(missing, o.Value)
		}
	}
	if len(missing) == 0 {
		return append(out, planned{Item: Item{Component: comp, Action: Unchanged, Detail: "choice with 0, 1, 2"}}), nil
	}
	p := planned{Item: Item{Component: comp, Action: Update, Detail: fmt.Sprintf("insert the missing values %v", missing)}}
	p.apply = func(ctx context.Context) error {
		op, _ := dataverse.Operation("InsertOptionValue")
		for _, v := range missing {
			lbl := flagOptions[v].Label
			if err := r.c.Invoke(ctx, op, map[string]any{"EntityLogicalName": "contact", "AttributeLogicalName": flag,
				"Value": v, "Label": label(lbl), "SolutionUniqueName": r.cfg.Solution}, nil, nil); err != nil {
				return err
			}
		}
		return nil
	}
	p.publishes = "contact"
	return append(out, p), nil
}

// takeOver checks that LinkedIn's column may be ours to write: it exists
// with 0, 1, 2, and no row carries a LinkedIn flag (LinkedIn's Data
// Validation would fight us daily).
func takeOver(ctx context.Context, r *run, comp string, attr map[string]any) ([]planned, error) {
	if attr == nil {
		return []planned{{Item: Item{Component: comp, Action: Conflict, Detail: "LinkedIn's column is not in this organization: use nac_orgchangestatus"}}}, nil
	}
	if t := str(attr, "AttributeType"); t != "Picklist" {
		return []planned{{Item: Item{Component: comp, Action: Conflict, Detail: "exists as " + t + ", not a choice"}}}, nil
	}
	have, err := optionValues(ctx, r.c, comp, LinkedInColumn)
	if err != nil {
		return nil, err
	}
	for _, o := range flagOptions {
		if !slices.Contains(have, o.Value) {
			return []planned{{Item: Item{Component: comp, Action: Conflict, Detail: fmt.Sprintf("has no value %d (%s)", o.Value, o.Label)}}}, nil
		}
	}
	contacts, _ := dataverse.Set("contacts")
	flagged, err := r.c.List(ctx, contacts, query(LinkedInColumn+" eq 1 or "+LinkedInColumn+" eq 2", "contactid"), nil, 1)
	if err != nil {
		return nil, &ComponentError{Component: comp, Err: fmt.Errorf("look for LinkedIn's flags: %w", err)}
	}
	if len(flagged) > 0 {
		return []planned{{Item: Item{Component: comp, Action: Conflict,
			Detail: "contacts carry LinkedIn flags: LinkedIn Data Validation looks on; switch it off and clear them first"}}}, nil
	}
	return []planned{{Item: Item{Component: comp, Action: Unchanged, Detail: "LinkedIn's column, taken over: no LinkedIn flags found"}}}, nil
}

func evidenceComponent(ctx context.Context, r *run) ([]planned, error) {
	if !r.cfg.EvidenceColumns {
		return nil, nil
	}
	var out []planned
	for _, col := range evidenceColumns(r.cfg.Prefix) {
		comp := "column contact." + col.logical
		attr, err := attributeOf(ctx, r.c, comp, col.logical)
		if err != nil {
			return nil, err
		}
		kind := strings.ToLower(col.typ)
		switch {
		case attr == nil:
			out = append(out, planned{Item: Item{Component: comp, Action: Create, Detail: kind + " (evidence, filled by the writer)"}, apply: createColumn(r, col), publishes: "contact"})
		case str(attr, "AttributeType") != col.typ:
			out = append(out, planned{Item: Item{Component: comp, Action: Conflict, Detail: fmt.Sprintf("exists as %s, not %s", str(attr, "AttributeType"), col.typ)}})
		default:
			out = append(out, planned{Item: Item{Component: comp, Action: Unchanged, Detail: kind}})
		}
	}
	return out, nil
}
