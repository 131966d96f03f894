package provision

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// registration is what Dataverse holds of the steps on our endpoint.
type registration struct {
	messages map[string]string         // name → sdkmessageid
	steps    map[string]map[string]any // step name → row
}

func readRegistration(ctx context.Context, r *run, comp string) (*registration, error) {
	reg := &registration{messages: map[string]string{}, steps: map[string]map[string]any{}}
	msgs, err := list(ctx, r.c, comp, "sdkmessages", query("name eq 'Create' or name eq 'Update' or name eq 'Delete'", "sdkmessageid,name"))
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		if id := str(m, "sdkmessageid"); dataverse.IsGUID(id) {
			reg.messages[str(m, "name")] = id
		}
	}
	if r.endpointID == "" {
		return reg, nil
	}
	steps, err := list(ctx, r.c, comp, "sdkmessageprocessingsteps", query("_eventhandler_value eq "+r.endpointID,
		"sdkmessageprocessingstepid,name,description,filteringattributes,stage,mode,statecode,asyncautodelete,_sdkmessagefilterid_value,_sdkmessageid_value"))
	if err != nil {
		return nil, err
	}
	for _, st := range steps {
		if dataverse.IsGUID(str(st, "sdkmessageprocessingstepid")) {
			reg.steps[str(st, "name")] = st
		}
	}
	return reg, nil
}

func (reg *registration) filterID(ctx context.Context, r *run, comp string, st Step) (string, error) {
	msg := reg.messages[st.Message]
	if msg == "" {
		return "", nil
	}
	rows, err := list(ctx, r.c, comp, "sdkmessagefilters", query("primaryobjecttypecode eq "+dataverse.Quote(st.Table)+" and _sdkmessageid_value eq "+msg, "sdkmessagefilterid"))
	if err != nil || len(rows) == 0 {
		return "", err
	}
	if id := str(rows[0], "sdkmessagefilterid"); dataverse.IsGUID(id) {
		return id, nil
	}
	return "", nil
}

func stepsComponent(ctx context.Context, r *run) ([]planned, error) {
	reg, err := readRegistration(ctx, r, "steps")
	if err != nil {
		return nil, err
	}
	var out []planned
	desired := map[string]bool{}
	for _, st := range Steps(r.cfg.Columns()) {
		comp := "step " + st.Message + " of " + st.Table
		desired[st.Name()] = true
		filter, err := reg.filterID(ctx, r, comp, st)
		if err != nil {
			return nil, err
		}
		if filter == "" {
			out = append(out, planned{Item: Item{Component: comp, Action: Unchanged, Detail: "Dataverse has no " + st.Message + " message for " + st.Table + ": skipped"}})
			continue
		}
		row := reg.steps[st.Name()]
		if row == nil {
			out = append(out, planned{Item: Item{Component: comp, Action: Create, Detail: stepDetail(st)}, apply: createStep(r, st, reg.messages[st.Message], filter)})
			continue
		}
		p, err := reconcileStep(ctx, r, comp, st, row, reg.messages[st.Message], filter)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range reg.steps {
			if !yield(n) {
				return
			}
		}
	}) {
		if desired[name] {
			continue
		}
		id := str(reg.steps[name], "sdkmessageprocessingstepid")
		out = append(out, planned{Item: Item{Component: "step " + strings.TrimPrefix(name, "notatcompany: "), Action: Delete,
			Detail: "on our endpoint but no longer wanted (id " + id + ")"}, apply: deleteRow(r, "sdkmessageprocessingsteps", id)})
	}
	return out, nil
}

func stepDetail(st Step) string {
	kind := map[int]string{0: "pre-image", 1: "post-image"}[st.ImageType]
	d := "async post-operation, " + kind + " of " + fmt.Sprint(len(st.ImageColumns)) + " columns"
	if len(st.Filtering) > 0 {
		d += ", filtering " + joinList(st.Filtering)
	}
	return d
}

func stepBody(r *run, st Step, message, filter string) (map[string]any, error) {
	endpoint, err := bind("serviceendpoints", r.endpointID)
	if err != nil {
		return nil, err
	}
	msg, err := bind("sdkmessages", message)
	if err != nil {
		return nil, err
	}
	flt, err := bind("sdkmessagefilters", filter)
	if err != nil {
		return nil, err
	}
	body := map[string]any{"name": st.Name(), "description": "Posts " + st.Message + " of " + st.Table + " to notatcompany's ingest. " + marker,
		"stage": 40, "mode": 1, "rank": 1, "supporteddeployment": 0, "asyncautodelete": true,
		"eventhandler_serviceendpoint@odata.bind": endpoint, "sdkmessageid@odata.bind": msg, "sdkmessagefilterid@odata.bind": flt}
	if st.Message == "Update" {
		body["filteringattributes"] = joinList(st.Filtering)
	}
	return body, nil
}

func imageBody(st Step) map[string]any {
	return map[string]any{"name": imageAlias, "entityalias": imageAlias, "imagetype": st.ImageType,
		"messagepropertyname": st.ImageProperty, "attributes": joinList(st.ImageColumns)}
}

func createStep(r *run, st Step, message, filter string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		body, err := stepBody(r, st, message, filter)
		if err != nil {
			return err
		}
		set, _ := dataverse.Set("sdkmessageprocessingsteps")
		id, err := r.c.Create(ctx, set, body, r.inSolution())
		if err != nil {
			return err
		}
		return createImage(ctx, r, st, id)
	}
}

func createImage(ctx context.Context, r *run, st Step, stepID string) error {
	step, err := bind("sdkmessageprocessingsteps", stepID)
	if err != nil {
		return err
	}
	img := imageBody(st)
	img["sdkmessageprocessingstepid@odata.bind"] = step
	set, _ := dataverse.Set("sdkmessageprocessingstepimages")
	if _, err := r.c.Create(ctx, set, img, nil); err != nil {
		return fmt.Errorf("image of the step: %w", err)
	}
	return nil
}

func sameList(a string, b []string) bool {
	var got []string
	for _, s := range strings.Split(a, ",") {
		if s = strings.TrimSpace(s); s != "" {
			got = append(got, s)
		}
	}
	slices.Sort(got)
	want := slices.Clone(b)
	slices.Sort(want)
	return slices.Equal(slices.Compact(got), slices.Compact(want))
}

func reconcileStep(ctx context.Context, r *run, comp string, st Step, row map[string]any, message, filter string) (planned, error) {
	id := str(row, "sdkmessageprocessingstepid")
	want, err := stepBody(r, st, message, filter)
	if err != nil {
		return planned{}, &ComponentError{Component: comp, Err: err}
	}
	var drift []string
	patch := map[string]any{}
	for _, f := range []string{"stage", "mode"} {
		if n, _ := num(row, f); n != want[f] {
			drift, patch[f] = append(drift, f), want[f]
		}
	}
	if row["asyncautodelete"] != true {
		drift, patch["asyncautodelete"] = append(drift, "asyncautodelete"), true
	}
	if st.Message == "Update" && !sameList(str(row, "filteringattributes"), st.Filtering) {
		drift, patch["filteringattributes"] = append(drift, "filtering attributes"), want["filteringattributes"]
	}
	if !strings.EqualFold(str(row, "_sdkmessageid_value"), message) || !strings.EqualFold(str(row, "_sdkmessagefilterid_value"), filter) {
		drift = append(drift, "message or table")
		patch["sdkmessageid@odata.bind"], patch["sdkmessagefilterid@odata.bind"] = want["sdkmessageid@odata.bind"], want["sdkmessagefilterid@odata.bind"]
	}
	disabled := false
	if n, _ := num(row, "statecode"); n != 0 {
		drift, disabled = append(drift, "disabled"), true
	}
	images, err := list(ctx, r.c, comp, "sdkmessageprocessingstepimages", query("_sdkmessageprocessingstepid_value eq "+id,
		"sdkmessageprocessingstepimageid,entityalias,imagetype,messagepropertyname,attributes"))
	if err != nil {
		return planned{}, err
	}
	var image map[string]any
	for _, img := range images {
		if str(img, "entityalias") == imageAlias && dataverse.IsGUID(str(img, "sdkmessageprocessingstepimageid")) {
			image = img
		}
	}
	imageDrift := image == nil
	if image != nil {
		t, _ := num(image, "imagetype")
		imageDrift = t != st.ImageType || str(image, "messagepropertyname") != st.ImageProperty || !sameList(str(image, "attributes"), st.ImageColumns)
	}
	if imageDrift {
		drift = append(drift, "image")
	}
	if len(drift) == 0 {
		return planned{Item: Item{Component: comp, Action: Unchanged, Detail: "id " + id}}, nil
	}
	p := planned{Item: Item{Component: comp, Action: Update, Detail: "restore " + strings.Join(drift, ", ") + " (id " + id + ")"}}
	p.apply = func(ctx context.Context) error {
		res, err := dataverse.RowOf("sdkmessageprocessingsteps", id)
		if err != nil {
			return err
		}
		if len(patch) > 0 {
			if err := r.c.Update(ctx, res, patch, nil); err != nil {
				return err
			}
		}
		if imageDrift {
			if image == nil {
				if err := createImage(ctx, r, st, id); err != nil {
					return err
				}
			} else {
				imgRes, err := dataverse.RowOf("sdkmessageprocessingstepimages", str(image, "sdkmessageprocessingstepimageid"))
				if err != nil {
					return err
				}
				if err := r.c.Update(ctx, imgRes, imageBody(st), nil); err != nil {
					return fmt.Errorf("image of the step: %w", err)
				}
			}
			// A step may keep serving its old image until it is disabled
			// and enabled again [unconfirmed by Microsoft].
			if !disabled {
				if err := r.c.Update(ctx, res, map[string]any{"statecode": 1, "statuscode": 2}, nil); err != nil {
					return err
				}
			}
			disabled = true
		}
		if disabled {
			return r.c.Update(ctx, res, map[string]any{"statecode": 0, "statuscode": 1}, nil)
		}
		return nil
	}
	return p, nil
}

func deleteRow(r *run, set, id string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		res, err := dataverse.RowOf(set, id)
		if err != nil {
			return err
		}
		return r.c.Delete(ctx, res, nil)
	}
}
