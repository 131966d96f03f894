package conf_test

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/conf"
)

// env returns a getenv over a fixed map.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

type settings struct {
	name    string
	count   int
	ratio   float64
	enabled bool
	wait    time.Duration
}

func define(p *conf.Parser, s *settings) {
	p.String(&s.name, "name", "NAC_NAME", "default-name", "a name")
	p.Int(&s.count, "count", "NAC_COUNT", 3, "a count")
	p.Float(&s.ratio, "ratio", "NAC_RATIO", 0.5, "a ratio")
	p.Bool(&s.enabled, "enabled", "NAC_ENABLED", false, "a switch")
	p.Duration(&s.wait, "wait", "NAC_WAIT", time.Second, "a wait")
}

func TestDefaults(t *testing.T) {
	var s settings
	p := conf.NewParser("svc", env(nil), io.Discard)
	define(p, &s)
	if err := p.Parse(nil); err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if err := p.Err(); err != nil {
		t.Fatalf("Err: %v", err)
	}
	want := settings{name: "default-name", count: 3, ratio: 0.5, enabled: false, wait: time.Second}
	if s != want {
		t.Errorf("settings = %+v, want %+v", s, want)
	}
}

func TestEnvValuesParsed(t *testing.T) {
	var s settings
	p := conf.NewParser("svc", env(map[string]string{
		"NAC_NAME":    "from-env",
		"NAC_COUNT":   "42",
		"NAC_RATIO":   "0.25",
		"NAC_ENABLED": "true",
		"NAC_WAIT":    "1500ms",
	}), io.Discard)
	define(p, &s)
	if err := p.Parse(nil); err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if err := p.Err(); err != nil {
		t.Fatalf("Err: %v", err)
	}
	want := settings{name: "from-env", count: 42, ratio: 0.25, enabled: true, wait: 1500 * time.Millisecond}
	if s != want {
		t.Errorf("settings = %+v, want %+v", s, want)
	}
}

func TestFlagBeatsEnvBeatsDefault(t *testing.T) {
	var s settings
	p := conf.NewParser("svc", env(map[string]string{
		"NAC_NAME":  "from-env",
		"NAC_COUNT": "42",
		"NAC_WAIT":  "2s",
	}), io.Discard)
	define(p, &s)
	if err := p.Parse([]string{"-name", "from-flag", "-wait=3s", "-enabled"}); err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if err := p.Err(); err != nil {
		t.Fatalf("Err: %v", err)
	}
	if s.name != "from-flag" {
		t.Errorf("name = %q, want the flag's value", s.name)
	}
	if s.wait != 3*time.Second {
		t.Errorf("wait = %v, want the flag's 3s", s.wait)
	}
	if !s.enabled {
		t.Errorf("enabled = false, want the flag's true")
	}
	if s.count != 42 {
		t.Errorf("count = %d, want the env's 42 (no flag given)", s.count)
	}
	if s.ratio != 0.5 {
		t.Errorf("ratio = %v, want the default 0.5 (neither flag nor env)", s.ratio)
	}
}

func TestBadEnvValuesReportedTogether(t *testing.T) {
	var s settings
	p := conf.NewParser("svc", env(map[string]string{
		"NAC_COUNT":   "many",
		"NAC_RATIO":   "half",
		"NAC_ENABLED": "maybe",
		"NAC_WAIT":    "forever",
	}), io.Discard)
	define(p, &s)
	if err := p.Parse(nil); err != nil {
		t.Fatalf("Parse: %v", err)
	}
	err := p.Err()
	if err == nil {
		t.Fatal("Err = nil, want every bad value reported")
	}
	msg := err.Error()
	for _, want := range []string{
		`NAC_COUNT="many": not an integer`,
		`NAC_RATIO="half": not a number`,
		`NAC_ENABLED="maybe": not a boolean`,
		`NAC_WAIT="forever": not a duration`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	// A bad value falls back to the default rather than a zero value.
	if s.count != 3 || s.wait != time.Second {
		t.Errorf("count, wait = %d, %v; want defaults 3, 1s", s.count, s.wait)
	}
}

func TestSecretFromEnv(t *testing.T) {
	var secret string
	p := conf.NewParser("svc", env(map[string]string{"NAC_X": "s3cret", "NAC_X_FILE": "/does/not/matter"}), io.Discard)
	p.Secret(&secret, "NAC_X")
	if err := p.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Err(); err != nil {
		t.Fatalf("Err: %v", err)
	}
	if secret != "s3cret" {
		t.Errorf("secret = %q, want %q", secret, "s3cret")
	}
}

func TestSecretFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte("  from-file\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var secret string
	p := conf.NewParser("svc", env(map[string]string{"NAC_X_FILE": path}), io.Discard)
	p.Secret(&secret, "NAC_X")
	if err := p.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Err(); err != nil {
		t.Fatalf("Err: %v", err)
	}
	if secret != "from-file" {
		t.Errorf("secret = %q, want %q (trimmed)", secret, "from-file")
	}
}

func TestSecretMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "absent")
	var secret string
	p := conf.NewParser("svc", env(map[string]string{"NAC_X_FILE": path}), io.Discard)
	p.Secret(&secret, "NAC_X")
	if err := p.Parse(nil); err != nil {
		t.Fatal(err)
	}
	err := p.Err()
	if err == nil {
		t.Fatal("Err = nil, want the missing secret file reported")
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %v does not wrap os.ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), "NAC_X_FILE") {
		t.Errorf("error %q does not name NAC_X_FILE", err)
	}
	if secret != "" {
		t.Errorf("secret = %q, want empty", secret)
	}
}

func TestSecretUnset(t *testing.T) {
	secret := "unchanged"
	p := conf.NewParser("svc", env(nil), io.Discard)
	p.Secret(&secret, "NAC_X")
	if err := p.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Err(); err != nil {
		t.Fatalf("Err: %v", err)
	}
	if secret != "unchanged" {
		t.Errorf("secret = %q, want it left alone", secret)
	}
}

func TestParseHelp(t *testing.T) {
	var s settings
	var out strings.Builder
	p := conf.NewParser("svc", env(nil), &out)
	define(p, &s)
	err := p.Parse([]string{"-h"})
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("Parse(-h) = %v, want flag.ErrHelp", err)
	}
	if !strings.Contains(out.String(), "NAC_COUNT") {
		t.Errorf("usage %q does not name the environment variables", out.String())
	}
}

func TestParseVersion(t *testing.T) {
	for _, arg := range []string{"-version", "--version"} {
		var s settings
		var out strings.Builder
		// A bad environment does not stand in the way of --version.
		p := conf.NewParser("svc", env(map[string]string{"NAC_COUNT": "many"}), &out)
		define(p, &s)
		err := p.Parse([]string{arg})
		if !errors.Is(err, conf.ErrVersion) || !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("Parse(%s) = %v, want ErrVersion, which is a flag.ErrHelp", arg, err)
		}
		if got := out.String(); !strings.HasPrefix(got, "svc dev (commit ") || !strings.HasSuffix(got, ")\n") {
			t.Errorf("Parse(%s) printed %q, want \"svc <version> (commit …)\"", arg, got)
		}
	}
}

func TestUnexpectedArguments(t *testing.T) {
	var s settings
	p := conf.NewParser("svc", env(nil), io.Discard)
	define(p, &s)
	if err := p.Parse([]string{"-count", "7", "extra", "more"}); err != nil {
		t.Fatalf("Parse: %v", err)
	}
	err := p.Err()
	if err == nil || !strings.Contains(err.Error(), "unexpected arguments: extra more") {
		t.Fatalf("Err = %v, want the positional arguments reported", err)
	}
	if s.count != 7 {
		t.Errorf("count = %d, want 7", s.count)
	}
}

func TestBadFlagReported(t *testing.T) {
	var s settings
	p := conf.NewParser("svc", env(nil), io.Discard)
	define(p, &s)
	if err := p.Parse([]string{"-count", "x"}); err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if err := p.Err(); err == nil || !strings.Contains(err.Error(), "-count") {
		t.Fatalf("Err = %v, want the bad flag reported", err)
	}
}

func TestList(t *testing.T) {
	got := conf.List(" a, b ,,c ,")
	want := []string{"a", "b", "c"}
	if strings.Join(got, "|") != strings.Join(want, "|") || len(got) != len(want) {
		t.Errorf("List = %q, want %q", got, want)
	}
	if got := conf.List(" , "); len(got) != 0 {
		t.Errorf("List of blanks = %q, want empty", got)
	}
}

func TestCommonDefaultsValid(t *testing.T) {
	var c conf.Common
	p := conf.NewParser("svc", env(nil), io.Discard)
	c.Define(p, ":9090")
	if err := p.Parse(nil); err != nil {
		t.Fatal(err)
	}
	c.Validate(p)
	if err := p.Err(); err != nil {
		t.Fatalf("Err: %v", err)
	}
	want := conf.Common{
		NATSURL: "nats://127.0.0.1:4222", OpsAddr: ":9090", LogFormat: "json", LogLevel: "info",
		StreamReplicas: 1, ShutdownTimeout: 8 * time.Second,
	}
	if c != want {
		t.Errorf("Common = %+v, want %+v", c, want)
	}
}

func TestCommonValidate(t *testing.T) {
	var c conf.Common
	p := conf.NewParser("svc", env(map[string]string{
		"NAC_LOG_FORMAT":       "xml",
		"NAC_LOG_LEVEL":        "verbose",
		"NAC_STREAM_REPLICAS":  "7",
		"NAC_SHUTDOWN_TIMEOUT": "-1s",
	}), io.Discard)
	c.Define(p, ":9090")
	if err := p.Parse([]string{"-nats-url=", "-ops-addr="}); err != nil {
		t.Fatal(err)
	}
	c.Validate(p)
	err := p.Err()
	if err == nil {
		t.Fatal("Err = nil, want the validation problems")
	}
	msg := err.Error()
	for _, want := range []string{
		"NAC_NATS_URL: required",
		"NAC_OPS_ADDR: required",
		`NAC_LOG_FORMAT="xml": want json or text`,
		`NAC_LOG_LEVEL="verbose": want debug, info, warn or error`,
		"NAC_STREAM_REPLICAS=7: want 1-5",
		"NAC_SHUTDOWN_TIMEOUT: must be positive",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
}

func TestCommonValidateReplicasZero(t *testing.T) {
	var c conf.Common
	p := conf.NewParser("svc", env(map[string]string{"NAC_STREAM_REPLICAS": "0", "NAC_LOG_FORMAT": "text"}), io.Discard)
	c.Define(p, ":9090")
	if err := p.Parse(nil); err != nil {
		t.Fatal(err)
	}
	c.Validate(p)
	err := p.Err()
	if err == nil || !strings.Contains(err.Error(), "NAC_STREAM_REPLICAS=0: want 1-5") {
		t.Fatalf("Err = %v, want replicas 0 refused", err)
	}
	if strings.Contains(err.Error(), "NAC_LOG_FORMAT") {
		t.Errorf("error %q refuses the valid log format text", err)
	}
}

func TestJSONList(t *testing.T) {
	type item struct {
		Name string `json:"name"`
	}
	for _, tc := range []struct {
		doc     string
		want    []item
		wantErr string
	}{
		{doc: "", want: nil},
		{doc: "  \n", want: nil},
		{doc: `[{"name":"a"},{"name":"b"}]`, want: []item{{"a"}, {"b"}}},
		{doc: `[{"name":"a","nmae":"typo"}]`, wantErr: `NAC_ITEMS: not a JSON array of {name}: json: unknown field "nmae"`},
		{doc: `{"name":"a"}`, wantErr: "NAC_ITEMS: not a JSON array of {name}"},
		{doc: `[{"name":`, wantErr: "NAC_ITEMS: not a JSON array of {name}"},
	} {
		got, err := conf.JSONList[item](tc.doc, "NAC_ITEMS", "{name}")
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: err %v, want %q", tc.doc, err, tc.wantErr)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("%q: %v %v, want %v", tc.doc, got, err, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%q: %v, want %v", tc.doc, got, tc.want)
			}
		}
	}
}
