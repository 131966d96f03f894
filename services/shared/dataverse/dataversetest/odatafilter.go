package dataversetest

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// odataFilter is a parsed $filter of the subset the stand-in answers:
// comparisons (eq, ne, gt, ge, lt, le) of a column with a literal (string,
// number, true, false, null, GUID), and, or, not and parentheses.
type odataFilter struct {
	op          string // "and", "or", "not", or a comparison operator
	left, right *odataFilter
	column      string
	literal     any // string, float64, bool or nil
}

// maxFilterLen bounds a $filter (Dataverse's URL limit is 32 KB).
const maxFilterLen = 32 << 10

type filterLexer struct {
	src  string
	pos  int
	tok  string
	kind byte // 'i' identifier, 's' string, 'n' number, 'g' guid, '(' ')' , 0 end
	err  error
	deep int
}

func parseFilter(src string) (*odataFilter, error) {
	if len(src) > maxFilterLen {
		return nil, fmt.Errorf("$filter is longer than %d bytes", maxFilterLen)
	}
	l := &filterLexer{src: src}
	l.next()
	f := l.or()
	if l.err == nil && l.kind != 0 {
		l.fail("unexpected %q", l.tok)
	}
	if l.err != nil {
		return nil, fmt.Errorf("Syntax error in $filter at position %d: %v", l.pos, l.err)
	}
	return f, nil
}

func (l *filterLexer) fail(format string, args ...any) {
	if l.err == nil {
		l.err = fmt.Errorf(format, args...)
	}
	l.kind = 0
}

func isGUIDAt(s string) bool {
	if len(s) < 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
		} else if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return len(s) == 36 || !isIdent(rune(s[36]))
}

func isIdent(c rune) bool {
	return c == '_' || c == '/' || c == '.' || unicode.IsLetter(c) || unicode.IsDigit(c)
}

func (l *filterLexer) next() {
	if l.err != nil {
		return
	}
	for l.pos < len(l.src) && l.src[l.pos] == ' ' {
		l.pos++
	}
	if l.pos >= len(l.src) {
		l.tok, l.kind = "", 0
		return
	}
	rest := l.src[l.pos:]
	c := rest[0]
	switch {
	case c == '(' || c == ')':
		l.tok, l.kind = rest[:1], c
		l.pos++
	case c == '\'':
		var b strings.Builder
		i := 1
		for {
			if i >= len(rest) {
				l.fail("unterminated string")
				return
			}
			if rest[i] == '\'' {
				if i+1 < len(rest) && rest[i+1] == '\'' {
					b.WriteByte('\'')
					i += 2
					continue
				}
				break
			}
			b.WriteByte(rest[i])
			i++
		}
		l.tok, l.kind = b.String(), 's'
		l.pos += i + 1
	case isGUIDAt(rest):
		l.tok, l.kind = strings.ToLower(rest[:36]), 'g'
		l.pos += 36
	case c == '-' || '0' <= c && c <= '9':
		i := 1
		for i < len(rest) && (rest[i] == '.' || '0' <= rest[i] && rest[i] <= '9') {
			i++
		}
		l.tok, l.kind = rest[:i], 'n'
		l.pos += i
	case isIdent(rune(c)):
		i := 0
		for i < len(rest) && rest[i] < 0x80 && isIdent(rune(rest[i])) {
			i++
		}
		if i == 0 {
			l.fail("unexpected character %q", rest[:1])
			return
		}
		l.tok, l.kind = rest[:i], 'i'
		l.pos += i
	default:
		l.fail("unexpected character %q", rest[:1])
	}
}

func (l *filterLexer) or() *odataFilter {
	f := l.and()
	for l.kind == 'i' && l.tok == "or" {
		l.next()
		f = &odataFilter{op: "or", left: f, right: l.and()}
	}
	return f
}

func (l *filterLexer) and() *odataFilter {
	f := l.unary()
	for l.kind == 'i' && l.tok == "and" {
		l.next()
		f = &odataFilter{op: "and", left: f, right: l.unary()}
	}
	return f
}

func (l *filterLexer) unary() *odataFilter {
	l.deep++
	defer func() { l.deep-- }()
	if l.deep > 32 {
		l.fail("nested too deeply")
		return nil
	}
	switch {
	case l.kind == 'i' && l.tok == "not":
		l.next()
		return &odataFilter{op: "not", left: l.unary()}
	case l.kind == '(':
		l.next()
		f := l.or()
		if l.kind != ')' {
			l.fail("missing )")
			return nil
		}
		l.next()
		return f
	case l.kind == 'i':
		col := l.tok
		if strings.Contains(col, "/") || strings.Contains(col, ".") {
			l.fail("navigation paths (%s) are not supported by the stand-in", col)
			return nil
		}
		l.next()
		if l.kind == '(' {
			l.fail("functions (%s) are not supported by the stand-in", col)
			return nil
		}
		op := l.tok
		switch op {
		case "eq", "ne", "gt", "ge", "lt", "le":
		default:
			l.fail("want a comparison operator after %s, got %q", col, op)
			return nil
		}
		l.next()
		lit, ok := l.literal()
		if !ok {
			return nil
		}
		return &odataFilter{op: op, column: col, literal: lit}
	}
	l.fail("want a comparison, got %q", l.tok)
	return nil
}

func (l *filterLexer) literal() (any, bool) {
	tok, kind := l.tok, l.kind
	switch kind {
	case 's', 'g':
		l.next()
		return tok, true
	case 'n':
		f, err := strconv.ParseFloat(tok, 64)
		if err != nil {
			l.fail("%q is not a number", tok)
			return nil, false
		}
		l.next()
		return f, true
	case 'i':
		switch tok {
		case "true", "false":
			l.next()
			return tok == "true", true
		case "null":
			l.next()
			return nil, true
		}
	}
	l.fail("want a literal, got %q", tok)
	return nil, false
}

// match evaluates the filter on a row (columns by name; lookups as _x_value).
func (f *odataFilter) match(row map[string]any) bool {
	switch f.op {
	case "and":
		return f.left.match(row) && f.right.match(row)
	case "or":
		return f.left.match(row) || f.right.match(row)
	case "not":
		return !f.left.match(row)
	}
	v := row[f.column]
	if f.literal == nil || v == nil {
		switch f.op {
		case "eq":
			return f.literal == nil && v == nil
		case "ne":
			return (f.literal == nil) != (v == nil)
		}
		return false
	}
	c, ok := compare(v, f.literal)
	if !ok {
		return f.op == "ne"
	}
	switch f.op {
	case "eq":
		return c == 0
	case "ne":
		return c != 0
	case "gt":
		return c > 0
	case "ge":
		return c >= 0
	case "lt":
		return c < 0
	default:
		return c <= 0
	}
}

// compare orders a stored value against a literal: numbers numerically,
// booleans as 0/1, strings and GUIDs case-insensitively. false: the two
// are not comparable.
func compare(v, lit any) (int, bool) {
	if a, ok := number(v); ok {
		if b, ok := number(lit); ok {
			switch {
			case a < b:
				return -1, true
			case a > b:
				return 1, true
			}
			return 0, true
		}
		if s, ok := lit.(string); ok {
			if b, err := strconv.ParseFloat(s, 64); err == nil {
				return compare(a, b)
			}
		}
		return 0, false
	}
	as, ok := v.(string)
	if !ok {
		return 0, false
	}
	bs, ok := lit.(string)
	if !ok {
		if f, isNum := lit.(float64); isNum {
			bs = strconv.FormatFloat(f, 'f', -1, 64)
		} else {
			return 0, false
		}
	}
	return strings.Compare(strings.ToLower(as), strings.ToLower(bs)), true
}

// number reads a stored number or boolean (true is 1, as in FetchXML).
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case bool:
		if n {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}
