package dataversetest

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

const contracts = "http://schemas.microsoft.com/xrm/2011/Contracts"

// kv is one entry of a RemoteExecutionContext's key/value lists.
type kv struct {
	Key   string `json:"key"`
	Value any    `json:"value"`
}

// execution is one run of the steps of a message on a row.
type execution struct {
	message string
	changed []string // the columns of an Update that this execution carries
}

// rowChanged raises the webhooks of a PATCH of a data row; s.mu is held,
// old is the row before the write (nil: the PATCH created it) and cols the
// columns written.
func (s *Server) rowChanged(r *http.Request, set, id string, old, cols map[string]any) {
	if customizationSets[set] {
		return
	}
	row := s.rows[set][id]
	if old == nil {
		s.raiseLocked(r, "Create", set, id, nil, row, changedColumns(cols), "", time.Now())
		return
	}
	s.raiseLocked(r, "Update", set, id, old, row, changedColumns(cols), "", time.Now())
}

// stampLocked sets the system columns of a PATCH before it is applied.
func (s *Server) stampPatch(r *http.Request, cols map[string]any, create bool) {
	caller := strings.ToLower(r.Header.Get("MSCRMCallerID"))
	if caller == "" {
		caller = s.ext.identity.AppUserID
	}
	stamp(cols, caller, time.Now(), create)
}

// raiseLocked queues a webhook for every enabled step that matches a
// change; s.mu is held. An Update that sets state columns together with
// others runs the steps twice, as Dataverse does: once for the other
// columns, once for the state.
func (s *Server) raiseLocked(r *http.Request, message, set, id string, pre, post map[string]any, changed []string, caller string, now time.Time) {
	s.seedLocked()
	if caller == "" {
		caller = strings.ToLower(r.Header.Get("MSCRMCallerID"))
		if caller == "" {
			caller = s.ext.identity.AppUserID
		}
	}
	table := tableOf(set)
	runs := []execution{{message: message, changed: changed}}
	if message == "Update" {
		var state, other []string
		for _, c := range changed {
			if c == "statecode" || c == "statuscode" {
				state = append(state, c)
			} else {
				other = append(other, c)
			}
		}
		runs = nil
		if len(other) > 0 {
			runs = append(runs, execution{message: message, changed: other})
		}
		if len(state) > 0 {
			runs = append(runs, execution{message: message, changed: state})
		}
	}
	msgID := fixedID("sdkmessage " + message)
	var hooks []*webhook
	for _, stepID := range slices.Sorted(mapsKeys(s.rows["sdkmessageprocessingsteps"])) {
		step := s.rows["sdkmessageprocessingsteps"][stepID]
		if str(step, "_sdkmessageid_value") != msgID || bypassed(r, stepID) {
			continue
		}
		if st, _ := number(step["statecode"]); st != 0 {
			continue
		}
		filter := s.rows["sdkmessagefilters"][str(step, "_sdkmessagefilterid_value")]
		if str(filter, "primaryobjecttypecode") != table {
			continue
		}
		endpointID := str(step, "_eventhandler_value")
		endpoint := s.rows["serviceendpoints"][endpointID]
		if endpoint == nil {
			continue
		}
		authType, _ := intOf(endpoint, "authtype")
		target, header, err := webhookTarget(str(endpoint, "url"), authType, s.ext.authValues[endpointID])
		if err != nil {
			continue
		}
		filtering := splitList(str(step, "filteringattributes"))
		for _, run := range runs {
			if message == "Update" && len(filtering) > 0 && !slices.ContainsFunc(run.changed, func(c string) bool { return slices.Contains(filtering, c) }) {
				continue
			}
			body, small := s.contextLocked(r, run, table, id, stepID, str(step, "name"), pre, post, caller, now)
			h := header.Clone()
			h.Set("Content-Type", "application/json")
			org := r.Host
			if org == "" { // a part of a $batch
				org = s.ext.identity.OrganizationName
			}
			h.Set("x-ms-dynamics-organization", org)
			h.Set("x-ms-dynamics-entity-name", table)
			h.Set("x-ms-dynamics-request-name", message)
			h.Set("x-ms-correlation-request-id", uuid.NewString())
			hooks = append(hooks, &webhook{stepID: stepID, message: message, table: table, rowID: id, url: target, header: h, body: body, small: small})
		}
	}
	s.ext.emitter.enqueue(s.recordFailure, hooks...)
}

// recordFailure keeps a failed webhook as Dataverse does: a system job
// (asyncoperation) with statuscode 31 (Failed), owned by the step.
func (s *Server) recordFailure(d Delivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.upsert("asyncoperations", uuid.NewString(), map[string]any{
		"name": "notatcompany webhook", "operationtype": float64(1), "statecode": float64(3), "statuscode": float64(31),
		"_owningextensionid_value": d.StepID, "_owningextensionid_value" + lookupAnnotation: "sdkmessageprocessingstep",
		"_regardingobjectid_value": d.RowID, "_regardingobjectid_value" + lookupAnnotation: d.Table,
		"message": d.Err, "messagename": d.Message, "completedon": time.Now().UTC().Format(time.RFC3339),
	})
}

func mapsKeys(m map[string]map[string]any) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// contextLocked renders the RemoteExecutionContext of one execution, and
// its size-exceeded form.
func (s *Server) contextLocked(r *http.Request, run execution, table, id, stepID, stepName string, pre, post map[string]any, caller string, now time.Time) ([]byte, []byte) {
	ident := s.ext.identity
	opID, corr := uuid.NewString(), uuid.NewString()
	created := "/Date(" + itoa(now.UnixMilli()) + ")/"
	shared := []kv{{Key: "IsAutoTransact", Value: true}}
	if tag := r.URL.Query().Get("tag"); tag != "" {
		shared = append(shared, kv{Key: "tag", Value: tag})
	}
	var target any
	var output []kv
	switch run.message {
	case "Delete":
		target = s.reference(table, id, true)
	case "Create":
		target = s.entity(table, id, post, nil, now, true)
		output = []kv{{Key: "id", Value: id}}
	default:
		cols := append(slices.Clone(run.changed), "modifiedon", "modifiedby")
		target = s.entity(table, id, post, cols, now, true)
	}
	var preImages, postImages []kv
	primary := s.defs[table]
	for _, imgID := range slices.Sorted(mapsKeys(s.rows["sdkmessageprocessingstepimages"])) {
		img := s.rows["sdkmessageprocessingstepimages"][imgID]
		if str(img, "_sdkmessageprocessingstepid_value") != stepID {
			continue
		}
		typ, _ := intOf(img, "imagetype")
		cols := splitList(str(img, "attributes"))
		if (typ == 0 || typ == 2) && pre != nil {
			preImages = append(preImages, kv{Key: str(img, "entityalias"), Value: s.entity(table, id, pre, cols, now, false)})
		}
		if (typ == 1 || typ == 2) && post != nil {
			postImages = append(postImages, kv{Key: str(img, "entityalias"), Value: s.entity(table, id, post, cols, now, false)})
		}
	}
	if primary != nil {
		// Async steps always get the primary name image.
		name := kv{Key: "AsynchronousStepPrimaryName", Value: nil}
		if run.message == "Delete" {
			name.Value = s.entity(table, id, pre, []string{primary.primaryName}, now, false)
			preImages = append(preImages, name)
		} else {
			name.Value = s.entity(table, id, post, []string{primary.primaryName}, now, false)
			postImages = append(postImages, name)
		}
	}
	ctx := map[string]any{
		"BusinessUnitId": ident.BusinessUnitID, "CorrelationId": corr, "Depth": 1,
		"InitiatingUserId": caller, "UserId": caller,
		"InputParameters":    []kv{{Key: "Target", Value: target}},
		"IsExecutingOffline": false, "IsInTransaction": false, "IsOfflinePlayback": false, "IsolationMode": 1,
		"MessageName": run.message, "Mode": 1, "OperationCreatedOn": created, "OperationId": opID,
		"OrganizationId": ident.OrganizationID, "OrganizationName": ident.OrganizationName,
		"OutputParameters": nonNil(output),
		"OwningExtension": map[string]any{"Id": stepID, "KeyAttributes": []any{}, "LogicalName": "sdkmessageprocessingstep",
			"Name": stepName, "RowVersion": nil},
		"ParentContext": map[string]any{
			"BusinessUnitId": ident.BusinessUnitID, "CorrelationId": corr, "Depth": 1,
			"InitiatingUserId": caller, "UserId": caller, "InputParameters": []kv{{Key: "Target", Value: target}},
			"MessageName": run.message, "Mode": 0, "OperationCreatedOn": created, "OperationId": opID,
			"OrganizationId": ident.OrganizationID, "OrganizationName": ident.OrganizationName, "OutputParameters": nonNil(output),
			"ParentContext": nil, "PostEntityImages": []kv{}, "PreEntityImages": []kv{},
			"PrimaryEntityId": id, "PrimaryEntityName": table, "RequestId": nil, "SecondaryEntityName": "none",
			"SharedVariables": shared, "Stage": 30,
		},
		"PostEntityImages": nonNil(postImages), "PreEntityImages": nonNil(preImages),
		"PrimaryEntityId": id, "PrimaryEntityName": table, "RequestId": nil, "SecondaryEntityName": "none",
		"SharedVariables": shared, "Stage": 40,
	}
	body, _ := json.Marshal(ctx)
	for _, k := range []string{"ParentContext", "InputParameters", "PreEntityImages", "PostEntityImages"} {
		delete(ctx, k)
	}
	small, _ := json.Marshal(ctx)
	return body, small
}

func nonNil(list []kv) []kv {
	if list == nil {
		return []kv{}
	}
	return list
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func (s *Server) reference(table, id string, typed bool) map[string]any {
	ref := map[string]any{"Id": id, "KeyAttributes": []any{}, "LogicalName": table, "Name": nil, "RowVersion": nil}
	if typed {
		ref["__type"] = "EntityReference:" + contracts
	}
	return ref
}

// entity renders row as an Entity with the columns cols (nil: every
// column that has a value). typed: a Target (with __type); images have none.
func (s *Server) entity(table, id string, row map[string]any, cols []string, now time.Time, typed bool) map[string]any {
	if cols == nil {
		for k := range row {
			if strings.Contains(k, "@") {
				continue
			}
			if a, ok := strings.CutPrefix(k, "_"); ok && strings.HasSuffix(a, "_value") {
				k = strings.TrimSuffix(a, "_value")
			}
			cols = append(cols, k)
		}
		slices.Sort(cols)
	}
	attrs := []kv{}
	for _, col := range slices.Compact(cols) {
		v, present := s.attributeValue(table, col, row, now)
		if !present || (v == nil && !typed) {
			continue // images hold the columns that have a value
		}
		attrs = append(attrs, kv{Key: col, Value: v})
	}
	attrs = append(attrs, kv{Key: table + "id", Value: id})
	e := map[string]any{"Attributes": attrs, "EntityState": nil, "FormattedValues": []any{}, "Id": id,
		"KeyAttributes": []any{}, "LogicalName": table, "RelatedEntities": []any{}, "RowVersion": nil}
	if typed {
		e["__type"] = "Entity:" + contracts
	}
	return e
}

// attributeValue renders one column of a stored (Web API form) row in the
// serialization of a RemoteExecutionContext.
func (s *Server) attributeValue(table, col string, row map[string]any, now time.Time) (any, bool) {
	if col == "modifiedon" {
		return "/Date(" + itoa(now.UnixMilli()) + ")/", true
	}
	typ := s.attrTypeLocked(table, col)
	if ref, ok := row["_"+col+"_value"]; ok || isLookup(typ) {
		if ref == nil {
			return nil, ok
		}
		target, _ := row["_"+col+"_value"+lookupAnnotation].(string)
		if target == "" {
			target = lookupTargets[col]
		}
		r := s.reference(target, strings.ToLower(str(row, "_"+col+"_value")), true)
		return r, true
	}
	v, ok := row[col]
	if !ok || v == nil {
		return nil, ok
	}
	switch typ {
	case "Picklist", "State", "Status":
		if n, isNum := number(v); isNum {
			return map[string]any{"__type": "OptionSetValue:" + contracts, "Value": n}, true
		}
	case "Money":
		if n, isNum := number(v); isNum {
			return map[string]any{"__type": "Money:" + contracts, "Value": n}, true
		}
	case "DateTime":
		if sv, isStr := v.(string); isStr {
			if t, err := time.Parse(time.RFC3339, sv); err == nil {
				return "/Date(" + itoa(t.UnixMilli()) + ")/", true
			}
		}
	}
	return v, true
}
