package fetchxml

import (
	"bytes"
	"encoding/xml"
	"fmt"
)

// Equivalent reports whether two FetchXML documents parse to the same
// query (whitespace, quoting and attribute order aside). A document that
// does not parse is equivalent to nothing.
func Equivalent(a, b string) bool {
	fa, err := Parse(a)
	if err != nil {
		return false
	}
	fb, err := Parse(b)
	if err != nil {
		return false
	}
	return fa.String() == fb.String()
}

// String renders the query in a canonical FetchXML form.
func (f *Fetch) String() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, `<fetch distinct="%t"`, f.Distinct)
	if f.Top > 0 {
		fmt.Fprintf(&b, ` top="%d"`, f.Top)
	}
	b.WriteString(">")
	writeEntity(&b, "entity", &f.Entity, nil)
	b.WriteString("</fetch>")
	return b.String()
}

func writeEntity(b *bytes.Buffer, tag string, e *Entity, l *Link) {
	fmt.Fprintf(b, `<%s name="%s"`, tag, e.Name)
	if l != nil {
		fmt.Fprintf(b, ` from="%s" to="%s" link-type="%s"`, l.From, l.To, l.Type)
		if l.Alias != "" {
			fmt.Fprintf(b, ` alias="%s"`, l.Alias)
		}
	}
	b.WriteString(">")
	if e.All {
		b.WriteString("<all-attributes/>")
	}
	for _, a := range e.Attributes {
		fmt.Fprintf(b, `<attribute name="%s"/>`, a)
	}
	for _, o := range e.Orders {
		fmt.Fprintf(b, `<order attribute="%s" descending="%t"/>`, o.Attribute, o.Descending)
	}
	for i := range e.Filters {
		writeFilter(b, &e.Filters[i])
	}
	for i := range e.Links {
		writeEntity(b, "link-entity", &e.Links[i].Entity, &e.Links[i])
	}
	fmt.Fprintf(b, "</%s>", tag)
}

func writeFilter(b *bytes.Buffer, f *Filter) {
	typ := "and"
	if f.Or {
		typ = "or"
	}
	fmt.Fprintf(b, `<filter type="%s">`, typ)
	for _, c := range f.Conditions {
		b.WriteString("<condition")
		if c.EntityName != "" {
			fmt.Fprintf(b, ` entityname="%s"`, c.EntityName)
		}
		fmt.Fprintf(b, ` attribute="%s" operator="%s"`, c.Attribute, c.Operator)
		if operators[c.Operator] {
			b.WriteString(` value="`)
			_ = xml.EscapeText(b, []byte(c.Value))
			b.WriteString(`"`)
		}
		b.WriteString("/>")
	}
	for i := range f.Filters {
		writeFilter(b, &f.Filters[i])
	}
	for i := range f.Any {
		writeEntity(b, "link-entity", &f.Any[i].Entity, &f.Any[i])
	}
	b.WriteString("</filter>")
}

// Use is one attribute a query names, of the table it belongs to.
type Use struct {
	Table     string
	Attribute string
}

// Uses lists every attribute the query names (selected, ordered on, joined
// on, compared), each with its table, so a server can check they exist.
func (f *Fetch) Uses() []Use {
	tables := map[string]string{} // alias → table
	var collect func(e *Entity)
	collect = func(e *Entity) {
		var links []*Link
		for i := range e.Links {
			links = append(links, &e.Links[i])
		}
		var anyLinks func(fl *Filter)
		anyLinks = func(fl *Filter) {
			for i := range fl.Any {
				links = append(links, &fl.Any[i])
			}
			for i := range fl.Filters {
				anyLinks(&fl.Filters[i])
			}
		}
		for i := range e.Filters {
			anyLinks(&e.Filters[i])
		}
		for _, l := range links {
			if l.Alias != "" {
				tables[l.Alias] = l.Name
			}
			collect(&l.Entity)
		}
	}
	collect(&f.Entity)
	var uses []Use
	var walk func(e *Entity)
	walk = func(e *Entity) {
		for _, a := range e.Attributes {
			uses = append(uses, Use{e.Name, a})
		}
		for _, o := range e.Orders {
			uses = append(uses, Use{e.Name, o.Attribute})
		}
		var filter func(fl *Filter)
		filter = func(fl *Filter) {
			for _, c := range fl.Conditions {
				t := e.Name
				if c.EntityName != "" {
					t = tables[c.EntityName]
				}
				uses = append(uses, Use{t, c.Attribute})
			}
			for i := range fl.Filters {
				filter(&fl.Filters[i])
			}
			for i := range fl.Any {
				l := &fl.Any[i]
				uses = append(uses, Use{e.Name, l.To}, Use{l.Name, l.From})
				walk(&l.Entity)
			}
		}
		for i := range e.Filters {
			filter(&e.Filters[i])
		}
		for i := range e.Links {
			l := &e.Links[i]
			uses = append(uses, Use{e.Name, l.To}, Use{l.Name, l.From})
			walk(&l.Entity)
		}
	}
	walk(&f.Entity)
	return uses
}
