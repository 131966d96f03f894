// Package fetchxml parses the subset of FetchXML that notatcompany's views
// use: one entity with attributes and orders, and/or filters of conditions
// (eq, ne, null, not-null, eq-userid, ne-userid), nested filters, and
// link-entity joins (inner, outer, any) with conditions on a link's alias.
// The Dataverse stand-in executes what it parses; provisioning compares a
// view's query with the desired one by meaning, not by spelling.
package fetchxml

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Fetch is a parsed FetchXML query.
type Fetch struct {
	Distinct bool
	Top      int // 0: no limit
	Entity   Entity
}

// Entity is the queried table, or a linked one.
type Entity struct {
	Name       string
	Attributes []string // logical names, in document order
	All        bool     // <all-attributes/>
	Orders     []Order
	Filters    []Filter // each must hold (and)
	Links      []Link
}

// Order sorts the results by an attribute.
type Order struct {
	Attribute  string
	Descending bool
}

// Filter is a group of conditions and nested filters.
type Filter struct {
	Or         bool
	Conditions []Condition
	Filters    []Filter
	// Any are link-type="any" links inside the filter: each is a
	// condition that some linked row matches.
	Any []Link
}

// Condition compares an attribute of the entity, or of the link with
// alias EntityName, with a value.
type Condition struct {
	EntityName string
	Attribute  string
	Operator   string
	Value      string
}

// Link is a link-entity join.
type Link struct {
	Entity        // Name is the linked table
	From   string // attribute of the linked table
	To     string // attribute of the parent
	Type   string // inner, outer or any
	Alias  string
}

// Operators this package understands, and whether each takes a value.
var operators = map[string]bool{
	"eq": true, "ne": true, "null": false, "not-null": false, "eq-userid": false, "ne-userid": false,
}

// Operators lists the supported condition operators.
func Operators() []string {
	ops := make([]string, 0, len(operators))
	for op := range operators {
		ops = append(ops, op)
	}
	slices.Sort(ops)
	return ops
}

// MaxSize is the largest query parsed (Dataverse's URL limit is 32 KB; a
// view's fetchxml column holds up to 1 MB).
const MaxSize = 1 << 20

// maxDepth bounds nesting of filters and links.
const maxDepth = 16

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,99}$`)

// Error says what is wrong with a query and where.
type Error struct {
	Path   string // e.g. "fetch/entity/filter/condition[2]"
	Reason string
}

func (e *Error) Error() string { return "fetchxml " + e.Path + ": " + e.Reason }

type xNode struct {
	XMLName xml.Name
	Attrs   []xml.Attr `xml:",any,attr"`
	Nodes   []xNode    `xml:",any"`
	Text    string     `xml:",chardata"`
}

func (n *xNode) attr(name string) (string, bool) {
	for _, a := range n.Attrs {
		if a.Name.Local == name && a.Name.Space == "" {
			return a.Value, true
		}
	}
	return "", false
}

// Parse parses a FetchXML document.
func Parse(doc string) (*Fetch, error) {
	if len(doc) > MaxSize {
		return nil, &Error{Path: "fetch", Reason: fmt.Sprintf("larger than %d bytes", MaxSize)}
	}
	dec := xml.NewDecoder(strings.NewReader(doc))
	dec.Strict = true
	var root xNode
	if err := dec.Decode(&root); err != nil {
		return nil, &Error{Path: "fetch", Reason: "not XML: " + err.Error()}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &Error{Path: "fetch", Reason: "content after the fetch element"}
	}
	if root.XMLName.Local != "fetch" {
		return nil, &Error{Path: root.XMLName.Local, Reason: "the root element must be fetch"}
	}
	f := &Fetch{}
	for _, a := range root.Attrs {
		switch a.Name.Local {
		case "distinct":
			b, err := parseBool(a.Value)
			if err != nil {
				return nil, &Error{Path: "fetch/@distinct", Reason: err.Error()}
			}
			f.Distinct = b
		case "top", "count":
			n, err := strconv.Atoi(a.Value)
			if err != nil || n < 1 || n > 5000 {
				return nil, &Error{Path: "fetch/@" + a.Name.Local, Reason: "want 1-5000"}
			}
			f.Top = n
		case "version", "output-format", "mapping", "no-lock", "returntotalrecordcount", "page", "paging-cookie", "aggregate":
			if a.Name.Local == "aggregate" && a.Value == "true" {
				return nil, &Error{Path: "fetch/@aggregate", Reason: "aggregate queries are not supported"}
			}
		default:
			return nil, &Error{Path: "fetch/@" + a.Name.Local, Reason: "unknown attribute"}
		}
	}
	var entities []xNode
	for _, n := range root.Nodes {
		if n.XMLName.Local != "entity" {
			return nil, &Error{Path: "fetch/" + n.XMLName.Local, Reason: "unknown element"}
		}
		entities = append(entities, n)
	}
	if len(entities) != 1 {
		return nil, &Error{Path: "fetch/entity", Reason: "want exactly one entity"}
	}
	p := parser{aliases: map[string]bool{}}
	e, err := p.entity(&entities[0], "fetch/entity", 0)
	if err != nil {
		return nil, err
	}
	f.Entity = e
	// Conditions may name a link's alias, declared anywhere in the query.
	if err := p.checkAliases(&f.Entity, "fetch/entity"); err != nil {
		return nil, err
	}
	return f, nil
}

type parser struct {
	aliases map[string]bool
}

func parseBool(s string) (bool, error) {
	switch s {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return false, fmt.Errorf("%q is not true or false", s)
}

func name(n *xNode, attr, path string) (string, error) {
	v, ok := n.attr(attr)
	if !ok {
		return "", &Error{Path: path + "/@" + attr, Reason: "required"}
	}
	if !nameRE.MatchString(v) {
		return "", &Error{Path: path + "/@" + attr, Reason: fmt.Sprintf("%q is not a logical name", v)}
	}
	return v, nil
}

func (p *parser) entity(n *xNode, path string, depth int) (Entity, error) {
	var e Entity
	if depth > maxDepth {
		return e, &Error{Path: path, Reason: "nested too deeply"}
	}
	var err error
	if e.Name, err = name(n, "name", path); err != nil {
		return e, err
	}
	for i := range n.Nodes {
		c := &n.Nodes[i]
		at := fmt.Sprintf("%s/%s[%d]", path, c.XMLName.Local, i+1)
		switch c.XMLName.Local {
		case "attribute":
			a, err := name(c, "name", at)
			if err != nil {
				return e, err
			}
			if _, ok := c.attr("aggregate"); ok {
				return e, &Error{Path: at, Reason: "aggregates are not supported"}
			}
			e.Attributes = append(e.Attributes, a)
		case "all-attributes":
			e.All = true
		case "order":
			o := Order{}
			if o.Attribute, err = name(c, "attribute", at); err != nil {
				return e, err
			}
			if d, ok := c.attr("descending"); ok {
				if o.Descending, err = parseBool(d); err != nil {
					return e, &Error{Path: at + "/@descending", Reason: err.Error()}
				}
			}
			e.Orders = append(e.Orders, o)
		case "filter":
			f, err := p.filter(c, at, depth+1)
			if err != nil {
				return e, err
			}
			e.Filters = append(e.Filters, f)
		case "link-entity":
			l, err := p.link(c, at, depth+1)
			if err != nil {
				return e, err
			}
			if l.Type == "any" {
				return e, &Error{Path: at, Reason: `link-type="any" belongs inside a filter`}
			}
			e.Links = append(e.Links, l)
		default:
			return e, &Error{Path: at, Reason: "unknown element"}
		}
	}
	return e, nil
}

func (p *parser) link(n *xNode, path string, depth int) (Link, error) {
	e, err := p.entity(n, path, depth)
	if err != nil {
		return Link{}, err
	}
	l := Link{Entity: e, Type: "inner"}
	if l.From, err = name(n, "from", path); err != nil {
		return l, err
	}
	if l.To, err = name(n, "to", path); err != nil {
		return l, err
	}
	if t, ok := n.attr("link-type"); ok {
		if t != "inner" && t != "outer" && t != "any" {
			return l, &Error{Path: path + "/@link-type", Reason: fmt.Sprintf("%q: want inner, outer or any", t)}
		}
		l.Type = t
	}
	if a, ok := n.attr("alias"); ok {
		if !nameRE.MatchString(a) {
			return l, &Error{Path: path + "/@alias", Reason: fmt.Sprintf("%q is not a valid alias", a)}
		}
		if p.aliases[a] {
			return l, &Error{Path: path + "/@alias", Reason: fmt.Sprintf("alias %q is used twice", a)}
		}
		p.aliases[a] = true
		l.Alias = a
	}
	return l, nil
}

func (p *parser) filter(n *xNode, path string, depth int) (Filter, error) {
	var f Filter
	if depth > maxDepth {
		return f, &Error{Path: path, Reason: "nested too deeply"}
	}
	if t, ok := n.attr("type"); ok {
		if t != "and" && t != "or" {
			return f, &Error{Path: path + "/@type", Reason: fmt.Sprintf("%q: want and or or", t)}
		}
		f.Or = t == "or"
	}
	for i := range n.Nodes {
		c := &n.Nodes[i]
		at := fmt.Sprintf("%s/%s[%d]", path, c.XMLName.Local, i+1)
		switch c.XMLName.Local {
		case "condition":
			cond, err := condition(c, at)
			if err != nil {
				return f, err
			}
			f.Conditions = append(f.Conditions, cond)
		case "filter":
			sub, err := p.filter(c, at, depth+1)
			if err != nil {
				return f, err
			}
			f.Filters = append(f.Filters, sub)
		case "link-entity":
			l, err := p.link(c, at, depth+1)
			if err != nil {
				return f, err
			}
			if l.Type != "any" {
				return f, &Error{Path: at, Reason: `only link-type="any" may be inside a filter`}
			}
			f.Any = append(f.Any, l)
		default:
			return f, &Error{Path: at, Reason: "unknown element"}
		}
	}
	return f, nil
}

func condition(n *xNode, path string) (Condition, error) {
	var c Condition
	var err error
	if c.Attribute, err = name(n, "attribute", path); err != nil {
		return c, err
	}
	op, ok := n.attr("operator")
	if !ok {
		return c, &Error{Path: path + "/@operator", Reason: "required"}
	}
	needsValue, known := operators[op]
	if !known {
		return c, &Error{Path: path + "/@operator", Reason: fmt.Sprintf("%q: want one of %s", op, strings.Join(Operators(), ", "))}
	}
	c.Operator = op
	if en, ok := n.attr("entityname"); ok {
		if !nameRE.MatchString(en) {
			return c, &Error{Path: path + "/@entityname", Reason: fmt.Sprintf("%q is not a valid alias", en)}
		}
		c.EntityName = en
	}
	v, hasValue := n.attr("value")
	if len(n.Nodes) > 0 {
		return c, &Error{Path: path, Reason: "value elements are not supported"}
	}
	switch {
	case needsValue && !hasValue:
		return c, &Error{Path: path + "/@value", Reason: "required by operator " + op}
	case !needsValue && hasValue:
		return c, &Error{Path: path + "/@value", Reason: "operator " + op + " takes no value"}
	}
	c.Value = v
	return c, nil
}

func (p *parser) checkAliases(e *Entity, path string) error {
	var walk func(f *Filter, at string) error
	walk = func(f *Filter, at string) error {
		for i, c := range f.Conditions {
			if c.EntityName != "" && !p.aliases[c.EntityName] {
				return &Error{Path: fmt.Sprintf("%s/condition[%d]/@entityname", at, i+1), Reason: fmt.Sprintf("no link-entity has alias %q", c.EntityName)}
			}
		}
		for i := range f.Filters {
			if err := walk(&f.Filters[i], at+"/filter"); err != nil {
				return err
			}
		}
		for i := range f.Any {
			if err := p.checkAliases(&f.Any[i].Entity, at+"/link-entity"); err != nil {
				return err
			}
		}
		return nil
	}
	for i := range e.Filters {
		if err := walk(&e.Filters[i], path+"/filter"); err != nil {
			return err
		}
	}
	for i := range e.Links {
		if err := p.checkAliases(&e.Links[i].Entity, path+"/link-entity"); err != nil {
			return err
		}
	}
	return nil
}
