// Package conf parses a service's typed configuration from command-line flags
// and NAC_* environment variables, once, at start. A flag wins over its
// environment variable, which wins over the default. Every problem found is
// kept and reported together, so an operator fixes a deployment in one pass.
package conf

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/buildinfo"
)

// ErrVersion is returned by Parse after -version printed the build: like
// -h, a request that ends the program successfully, so it wraps flag.ErrHelp.
var ErrVersion = fmt.Errorf("%w: version printed", flag.ErrHelp)

// Parser collects flag definitions and configuration problems.
type Parser struct {
	fs      *flag.FlagSet
	getenv  func(string) string
	errs    []error
	version bool
}

// NewParser returns a parser for the named program. Usage (-h) goes to out.
func NewParser(name string, getenv func(string) string, out io.Writer) *Parser {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	p := &Parser{fs: fs, getenv: getenv}
	fs.BoolVar(&p.version, "version", false, "print the version, commit and build date, and exit")
	return p
}

func (p *Parser) lookup(env string) (string, bool) {
	v := p.getenv(env)
	return v, v != ""
}

func usage(env, text string) string { return fmt.Sprintf("%s (env %s)", text, env) }

// String defines a string setting.
func (p *Parser) String(dst *string, name, env, def, text string) {
	if v, ok := p.lookup(env); ok {
		def = v
	}
	p.fs.StringVar(dst, name, def, usage(env, text))
}

// Int defines an integer setting.
func (p *Parser) Int(dst *int, name, env string, def int, text string) {
	if v, ok := p.lookup(env); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			p.errs = append(p.errs, fmt.Errorf("%s=%q: not an integer", env, v))
		} else {
			def = n
		}
	}
	p.fs.IntVar(dst, name, def, usage(env, text))
}

// Float defines a floating-point setting.
func (p *Parser) Float(dst *float64, name, env string, def float64, text string) {
	if v, ok := p.lookup(env); ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			p.errs = append(p.errs, fmt.Errorf("%s=%q: not a number", env, v))
		} else {
			def = f
		}
	}
	p.fs.Float64Var(dst, name, def, usage(env, text))
}

// Bool defines a boolean setting.
func (p *Parser) Bool(dst *bool, name, env string, def bool, text string) {
	if v, ok := p.lookup(env); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			p.errs = append(p.errs, fmt.Errorf("%s=%q: not a boolean", env, v))
		} else {
			def = b
		}
	}
	p.fs.BoolVar(dst, name, def, usage(env, text))
}

// Duration defines a duration setting ("500ms", "30s").
func (p *Parser) Duration(dst *time.Duration, name, env string, def time.Duration, text string) {
	if v, ok := p.lookup(env); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			p.errs = append(p.errs, fmt.Errorf("%s=%q: not a duration", env, v))
		} else {
			def = d
		}
	}
	p.fs.DurationVar(dst, name, def, usage(env, text))
}

// Secret reads a secret from the environment variable env, or from the file
// named by env+"_FILE" (a mounted Kubernetes secret). Secrets never come from
// flags, which other users of the machine can read in the process list.
func (p *Parser) Secret(dst *string, env string) { p.SecretFromFile(dst, nil, env) }

// SecretFromFile reads a secret like Secret and, when it came from a file,
// sets *file to the file's path, so that its user can read it again when
// the mounted Secret is rotated.
func (p *Parser) SecretFromFile(dst, file *string, env string) {
	if v, ok := p.lookup(env); ok {
		*dst = v
		return
	}
	path, ok := p.lookup(env + "_FILE")
	if !ok {
		return
	}
	v, err := readSecretFile(path)
	if err != nil {
		p.errs = append(p.errs, fmt.Errorf("%s_FILE: %w", env, err))
		return
	}
	*dst = v
	if file != nil {
		*file = path
	}
}

// Check records problem unless ok holds. Call it after Parse to validate.
func (p *Parser) Check(ok bool, format string, args ...any) {
	if !ok {
		p.errs = append(p.errs, fmt.Errorf(format, args...))
	}
}

// Parse parses args. It returns flag.ErrHelp for -h, ErrVersion once
// -version printed "<name> <build>", and records any other problem;
// validate with Check, then return Err.
func (p *Parser) Parse(args []string) error {
	if err := p.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		p.errs = append(p.errs, err)
	}
	if p.version {
		fmt.Fprintf(p.fs.Output(), "%s %s\n", p.fs.Name(), buildinfo.Get())
		return ErrVersion
	}
	if p.fs.NArg() > 0 {
		p.errs = append(p.errs, fmt.Errorf("unexpected arguments: %s", strings.Join(p.fs.Args(), " ")))
	}
	return nil
}

// Err returns every problem recorded, joined, or nil.
func (p *Parser) Err() error {
	if len(p.errs) == 0 {
		return nil
	}
	return fmt.Errorf("configuration: %w", errors.Join(p.errs...))
}

// List splits a comma-separated setting, dropping empty items.
func List(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// JSONList decodes doc, the setting env holding a JSON array of shape (as
// the error names it), strictly: a field the type does not have is a
// mistake, not something to ignore. An empty document is an empty list.
func JSONList[T any](doc, env, shape string) ([]T, error) {
	if strings.TrimSpace(doc) == "" {
		return nil, nil
	}
	var list []T
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&list); err != nil {
		return nil, fmt.Errorf("%s: not a JSON array of %s: %w", env, shape, err)
	}
	return list, nil
}
