package remotecontext

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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

// rawObject is any JSON object Dataverse puts in a context: an Entity, an
// EntityReference, an OptionSetValue, Money or an EntityCollection. Decoding
// into one struct, rather than into maps, keeps parsing to a single pass.
type rawObject struct {
	Type        string          `json:"__type"`
	LogicalName *string         `json:"LogicalName"`
	ID          string          `json:"Id"`
	Name        *string         `json:"Name"`
	Value       json.RawMessage `json:"Value"`
	Attributes  *[]rawAttr      `json:"Attributes"`
	Entities    []rawObject     `json:"Entities"`
	EntityName  string          `json:"EntityName"`
}

// rawAttr is one attribute of an entity; its value is converted while the
// entity is decoded.
type rawAttr struct {
	Key   string   `json:"key"`
	Value rawValue `json:"value"`
}

// rawValue converts a column value as it is decoded, keeping the error to
// report it with the attribute's place.
type rawValue struct {
	v   *eventsv1.Value
	err error
}

func (r *rawValue) UnmarshalJSON(b []byte) error {
	r.v, r.err = convertRaw(b)
	return nil
}

// typeName returns the part of a "__type" before the contract namespace:
// "EntityReference:http://schemas..." → "EntityReference".
func (o *rawObject) typeName() string {
	name, _, _ := strings.Cut(o.Type, ":")
	return name
}

// convertRaw turns one JSON value of a column into a typed Value.
func convertRaw(b []byte) (*eventsv1.Value, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, fmt.Errorf("empty value")
	}
	switch b[0] {
	case 'n':
		return &eventsv1.Value{Kind: &eventsv1.Value_Null{Null: true}}, nil
	case 't', 'f':
		return &eventsv1.Value{Kind: &eventsv1.Value_Boolean{Boolean: b[0] == 't'}}, nil
	case '"':
		var x string
		if bytes.IndexByte(b, '\\') < 0 && utf8.Valid(b) {
			x = string(b[1 : len(b)-1]) // no escapes: the common case, no decoder
		} else if err := json.Unmarshal(b, &x); err != nil {
			return nil, err
		}
		return convertString(x), nil
	case '[':
		// A multi-select choice column is an array of OptionSetValue.
		var items []rawObject
		if err := json.Unmarshal(b, &items); err != nil {
			return nil, fmt.Errorf("array: %w", err)
		}
		choices := &eventsv1.Choices{Values: make([]int32, 0, len(items))}
		for i := range items {
			if items[i].typeName() != "OptionSetValue" {
				return nil, fmt.Errorf("array item %d: want OptionSetValue", i)
			}
			n, err := int32Of(items[i].Value)
			if err != nil {
				return nil, fmt.Errorf("array item %d: %w", i, err)
			}
			choices.Values = append(choices.Values, n)
		}
		return &eventsv1.Value{Kind: &eventsv1.Value_Choices{Choices: choices}}, nil
	case '{':
		var o rawObject
		if err := json.Unmarshal(b, &o); err != nil {
			return nil, fmt.Errorf("object: %w", err)
		}
		return convertObject(&o)
	default:
		return convertNumber(json.Number(b))
	}
}

func convertString(x string) *eventsv1.Value {
	if t, ok := parseDate(x); ok {
		return &eventsv1.Value{Kind: &eventsv1.Value_DateTime{DateTime: timestamppb.New(t)}}
	}
	if IsGUID(x) {
		return &eventsv1.Value{Kind: &eventsv1.Value_Guid{Guid: strings.ToLower(x)}}
	}
	return &eventsv1.Value{Kind: &eventsv1.Value_String_{String_: x}}
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

func convertObject(o *rawObject) (*eventsv1.Value, error) {
	switch o.typeName() {
	case "EntityReference":
		ref, err := convertReference(o)
		if err != nil {
			return nil, err
		}
		return &eventsv1.Value{Kind: &eventsv1.Value_Reference{Reference: ref}}, nil
	case "OptionSetValue":
		n, err := int32Of(o.Value)
		if err != nil {
			return nil, fmt.Errorf("OptionSetValue: %w", err)
		}
		return &eventsv1.Value{Kind: &eventsv1.Value_Choice{Choice: n}}, nil
	case "Money":
		v, err := convertNumber(json.Number(bytes.TrimSpace(o.Value)))
		if err != nil || v.GetKind() == nil {
			return nil, fmt.Errorf("Money: Value is not a number")
		}
		f := v.GetDecimal()
		if i, ok := v.GetKind().(*eventsv1.Value_Integer); ok {
			f = float64(i.Integer)
		}
		return &eventsv1.Value{Kind: &eventsv1.Value_Money{Money: f}}, nil
	case "EntityCollection":
		coll := &eventsv1.EntityCollection{Table: o.EntityName}
		for i := range o.Entities {
			e, err := convertEntity(&o.Entities[i])
			if err != nil {
				return nil, fmt.Errorf("EntityCollection item %d: %w", i, err)
			}
			coll.Entities = append(coll.Entities, e.proto())
		}
		return &eventsv1.Value{Kind: &eventsv1.Value_Collection{Collection: coll}}, nil
	case "Entity":
		e, err := convertEntity(o)
		if err != nil {
			return nil, err
		}
		coll := &eventsv1.EntityCollection{Table: e.Table, Entities: []*eventsv1.Entity{e.proto()}}
		return &eventsv1.Value{Kind: &eventsv1.Value_Collection{Collection: coll}}, nil
	case "":
		// Untyped objects: an image-style entity or a bare reference.
		if o.Attributes != nil {
			o.Type = "Entity:"
			return convertObject(o)
		}
		if o.LogicalName != nil {
			o.Type = "EntityReference:"
			return convertObject(o)
		}
		return nil, fmt.Errorf("object without __type")
	default:
		return nil, fmt.Errorf("unsupported __type %q", o.typeName())
	}
}

func convertReference(o *rawObject) (*eventsv1.EntityReference, error) {
	if o.LogicalName == nil || *o.LogicalName == "" {
		return nil, fmt.Errorf("EntityReference without LogicalName")
	}
	ref := &eventsv1.EntityReference{Table: *o.LogicalName, Id: strings.ToLower(o.ID)}
	if o.Name != nil {
		ref.Name = *o.Name
	}
	return ref, nil
}

func int32Of(raw json.RawMessage) (int32, error) {
	n, err := strconv.ParseInt(string(bytes.TrimSpace(raw)), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("Value is not a 32-bit integer")
	}
	return int32(n), nil
}
