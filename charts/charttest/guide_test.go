package charttest

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"helm.sh/helm/v3/pkg/strvals"
)

// The guides whose commands are run here.
var guides = []string{"../notatcompany/README.md", "../../README.md"}

var shBlock = regexp.MustCompile("(?s)```sh\n(.*?)```")

// commands are the shell commands of a guide's sh blocks, continuation
// lines joined, split into words as the shell would (quotes, backslashes).
func commands(t *testing.T, path string) [][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cmds [][]string
	for _, m := range shBlock.FindAllStringSubmatch(string(b), -1) {
		body := strings.ReplaceAll(m[1], "\\\n", " ")
		for _, line := range strings.Split(body, "\n") {
			if words := shellWords(line); len(words) > 0 {
				cmds = append(cmds, words)
			}
		}
	}
	return cmds
}

// shellWords splits line as sh would, enough for the guides: quotes and
// backslashes; a # starts a comment; $(…) stays as it is.
func shellWords(line string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	quote := rune(0)
	rs := []rune(line)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case quote == '"':
			if r == '"' {
				quote = 0
			} else if r == '\\' && i+1 < len(rs) && strings.ContainsRune("\"\\$`", rs[i+1]) {
				i++
				cur.WriteRune(rs[i])
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == '\\' && i+1 < len(rs):
			i++
			cur.WriteRune(rs[i])
			inWord = true
		case r == '#' && !inWord:
			return words
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

func TestShellWords(t *testing.T) {
	got := shellWords(`helm x --set-string 'a.b\.c=d' --set "e=$(f g)" h\.i # note`)
	want := []string{"helm", "x", "--set-string", `a.b\.c=d`, "--set", "e=$(f g)", "h.i"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("shellWords = %q, want %q", got, want)
	}
}

// helmRelease reads `helm install|upgrade [--install] <release> charts/notatcompany …`.
func helmRelease(t *testing.T, words []string) (Release, bool) {
	t.Helper()
	if len(words) < 4 || words[0] != "helm" || (words[1] != "install" && words[1] != "upgrade") {
		return Release{}, false
	}
	var pos []string
	rel := Release{Namespace: "default", Values: map[string]any{}}
	for i := 2; i < len(words); i++ {
		w := words[i]
		next := func() string {
			i++
			if i >= len(words) {
				t.Fatalf("%v: %s without a value", words, w)
			}
			return words[i]
		}
		switch w {
		case "--install", "--create-namespace", "--wait", "--atomic":
		case "--set":
			if err := strvals.ParseInto(next(), rel.Values); err != nil {
				t.Fatalf("%v: %v", words, err)
			}
		case "--set-string":
			if err := strvals.ParseIntoString(next(), rel.Values); err != nil {
				t.Fatalf("%v: %v", words, err)
			}
		case "-f", "--values":
			b, err := os.ReadFile(filepath.Join("../..", next()))
			if err != nil {
				t.Fatalf("%v: %v", words, err)
			}
			var v map[string]any
			if err := yaml.Unmarshal(b, &v); err != nil {
				t.Fatal(err)
			}
			for k, x := range v {
				rel.Values[k] = x
			}
		case "-n", "--namespace":
			rel.Namespace = next()
		default:
			if strings.HasPrefix(w, "-") {
				t.Fatalf("%v: the guide test does not know %s; teach it", words, w)
			}
			pos = append(pos, w)
		}
	}
	if len(pos) != 2 || pos[1] != "charts/notatcompany" {
		return Release{}, false // another chart (nats)
	}
	rel.Name = pos[0]
	return rel, true
}

// secretCommand reads `kubectl create secret generic <name> --from-…`: the
// Secret's name and its keys.
func secretCommand(words []string) (string, map[string]bool, bool) {
	if len(words) < 5 || strings.Join(words[:4], " ") != "kubectl create secret generic" {
		return "", nil, false
	}
	keys := map[string]bool{}
	for _, w := range words[5:] {
		for _, flag := range []string{"--from-literal=", "--from-file="} {
			if v, ok := strings.CutPrefix(w, flag); ok {
				key, _, hasKey := strings.Cut(v, "=")
				if flag == "--from-file=" && !hasKey {
					key = filepath.Base(v)
				}
				keys[key] = true
			}
		}
	}
	return words[4], keys, true
}

// The guides' helm commands render installable releases, and their
// kubectl commands create every key those releases' pods mount.
func TestGuideCommands(t *testing.T) {
	c := load(t)
	secrets := map[string][]map[string]bool{}
	var releases []Release
	for _, g := range guides {
		for _, words := range commands(t, g) {
			if name, keys, ok := secretCommand(words); ok {
				secrets[name] = append(secrets[name], keys)
			}
			if rel, ok := helmRelease(t, words); ok {
				releases = append(releases, rel)
			}
		}
	}
	if len(releases) < 4 || len(secrets["notatcompany"]) < 2 {
		t.Fatalf("found %d helm commands and %d kubectl create secret commands for notatcompany; the guides have more", len(releases), len(secrets["notatcompany"]))
	}
	for _, rel := range releases {
		t.Run(rel.Name+" "+flat(rel.Values), func(t *testing.T) {
			r := render(t, c, rel)
			for _, p := range Pods(r.Objects) {
				for name, cmds := range secrets {
					need := secretKeys(p.Template, name)
					if len(need) == 0 {
						continue
					}
					if !anyCovers(cmds, need) {
						t.Errorf("%s mounts %v of the Secret %s, which no kubectl command of the guide creates all of", p.Owner, need, name)
					}
				}
			}
		})
	}
}

func anyCovers(cmds []map[string]bool, need []string) bool {
	for _, keys := range cmds {
		all := true
		for _, k := range need {
			all = all && keys[k]
		}
		if all {
			return true
		}
	}
	return false
}

func flat(v map[string]any) string {
	b, _ := yaml.Marshal(v)
	return strings.Join(strings.Fields(string(b)), " ")
}
