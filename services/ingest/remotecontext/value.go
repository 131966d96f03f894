package remotecontext

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// dateRE matches the WCF JSON date form "/Date(ms)/" and "/Date(ms+hhmm)/".
// The milliseconds are UTC; the offset only says where the writer was.
var dateRE = regexp.MustCompile(`^/Date\((-?\d+)([+-]\d{4})?\)/$`)

// IsGUID reports whether s is a GUID in its canonical 8-4-4-4-12 form.
// Every string value goes through it, so it is written out, not a regexp.
func IsGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// parseDate parses "/Date(ms)/" (with or without offset).
func parseDate(s string) (time.Time, bool) {
	if !strings.HasPrefix(s, "/Date(") {
		return time.Time{}, false
	}
	m := dateRE.FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, false
	}
	ms, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(ms).UTC(), true
}

// typeName returns the part of a "__type" before the contract namespace:
// "EntityReference:http://schemas..." → "EntityReference".
func typeName(obj map[string]any) string {
	t, _ := obj["__type"].(string)
	name, _, _ := strings.Cut(t, ":")
	return name
}

// convertValue turns one decoded JSON value of an attribute into a typed
// Value. ok is false for a shape that no Dataverse column produces.
func convertValue(v any) (val *eventsv1.Value, err error) {
	switch x := v.(type) {
	case nil:
		return &eventsv1.Value{Kind: &eventsv1.Value_Null{Null: true}}, nil
	case bool:
		return &eventsv1.Value{Kind: &eventsv1.Value_Boolean{Boolean: x}}, nil
	case json.Number:
		return convertNumber(x)
	case string:
		if t, ok := parseDate(x); ok {
			return &eventsv1.Value{Kind: &eventsv1.Value_DateTime{DateTime: timestamppb.New(t)}}, nil
		}
		if IsGUID(x) {
			return &eventsv1.Value{Kind: &eventsv1.Value_Guid{Guid: strings.ToLower(x)}}, nil
		}
		return &eventsv1.Value{Kind: &eventsv1.Value_String_{String_: x}}, nil
	case []any:
		// A multi-select choice column is an array of OptionSetValue.
		choices := &eventsv1.Choices{Values: make([]int32, 0, len(x))}
		for i, item := range x {
			obj, ok := item.(map[string]any)
			if !ok || typeName(obj) != "OptionSetValue" {
				return nil, fmt.Errorf("array item %d: want OptionSetValue", i)
			}
			n, err := int32Field(obj, "Value")
			if err != nil {
				return nil, fmt.Errorf("array item %d: %w", i, err)
			}
			choices.Values = append(choices.Values, n)
		}
		return &eventsv1.Value{Kind: &eventsv1.Value_Choices{Choices: choices}}, nil
	case map[string]any:
		return convertObject(x)
	default:
		return nil, fmt.Errorf("unsupported JSON value %T", v)
	}
}

func convertNumber(n json.Number) (*eventsv1.Value, error) {
	if i, err := n.Int64(); err == nil {
		return &eventsv1.Value{Kind: &eventsv1.Value_Integer{Integer: i}}, nil
	}
	f, err := n.Float64()
	if err != nil || math.IsInf(f, 0) {
		return nil, fmt.Errorf("number %q out of range", n.String())
	}
	return &eventsv1.Value{Kind: &eventsv1.Value_Decimal{Decimal: f}}, nil
}

func convertObject(obj map[string]any) (*eventsv1.Value, error) {
	switch typeName(obj) {
	case "EntityReference":
		ref, err := convertReference(obj)
		if err != nil {
			return nil, err
		}
		return &eventsv1.Value{Kind: &eventsv1.Value_Reference{Reference: ref}}, nil
	case "OptionSetValue":
		n, err := int32Field(obj, "Value")
		if err != nil {
			return nil, fmt.Errorf("OptionSetValue: %w", err)
		}
		return &eventsv1.Value{Kind: &eventsv1.Value_Choice{Choice: n}}, nil
	case "Money":
		num, ok := obj["Value"].(json.Number)
		if !ok {
			return nil, fmt.Errorf("Money: Value is not a number")
		}
		f, err := num.Float64()
		if err != nil {
			return nil, fmt.Errorf("Money: %w", err)
		}
		return &eventsv1.Value{Kind: &eventsv1.Value_Money{Money: f}}, nil
	case "EntityCollection":
		coll := &eventsv1.EntityCollection{}
		coll.Table, _ = obj["EntityName"].(string)
		items, _ := obj["Entities"].([]any)
		for i, item := range items {
			eobj, ok := item.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("EntityCollection item %d: not an object", i)
			}
			e, err := convertEntity(eobj)
			if err != nil {
				return nil, fmt.Errorf("EntityCollection item %d: %w", i, err)
			}
			coll.Entities = append(coll.Entities, e.proto())
		}
		return &eventsv1.Value{Kind: &eventsv1.Value_Collection{Collection: coll}}, nil
	case "Entity":
		e, err := convertEntity(obj)
		if err != nil {
			return nil, err
		}
		coll := &eventsv1.EntityCollection{Table: e.Table, Entities: []*eventsv1.Entity{e.proto()}}
		return &eventsv1.Value{Kind: &eventsv1.Value_Collection{Collection: coll}}, nil
	case "":
		// Untyped objects: an image-style entity or a bare reference.
		if _, ok := obj["Attributes"]; ok {
			return convertObject(withType(obj, "Entity"))
		}
		if _, ok := obj["LogicalName"]; ok {
			return convertObject(withType(obj, "EntityReference"))
		}
		return nil, fmt.Errorf("object without __type")
	default:
		return nil, fmt.Errorf("unsupported __type %q", typeName(obj))
	}
}

func withType(obj map[string]any, name string) map[string]any {
	c := make(map[string]any, len(obj)+1)
	for k, v := range obj {
		c[k] = v
	}
	c["__type"] = name + ":"
	return c
}

func convertReference(obj map[string]any) (*eventsv1.EntityReference, error) {
	id, _ := obj["Id"].(string)
	table, _ := obj["LogicalName"].(string)
	if table == "" {
		return nil, fmt.Errorf("EntityReference without LogicalName")
	}
	name, _ := obj["Name"].(string)
	return &eventsv1.EntityReference{Table: table, Id: strings.ToLower(id), Name: name}, nil
}

func int32Field(obj map[string]any, key string) (int32, error) {
	num, ok := obj[key].(json.Number)
	if !ok {
		return 0, fmt.Errorf("%s is not a number", key)
	}
	n, err := strconv.ParseInt(num.String(), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", key, err)
	}
	return int32(n), nil
}
