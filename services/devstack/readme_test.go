package devstack_test

import (
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/notatcompany/notatcompany/services/devstack"
)

// tryItBlock is the first sh block of the README's "Try it" section.
func tryItBlock(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Try it\n")
	if !ok {
		t.Fatal("README has no Try it section")
	}
	_, block, ok := strings.Cut(section, "```sh\n")
	if !ok {
		t.Fatal("Try it has no sh block")
	}
	block, _, _ = strings.Cut(block, "\n```")
	return block
}

// TestReadmeTryIt runs the README's Try it block twice, as a newcomer
// would, against a devstack on other ports (the block follows
// NAC_HTTP_ADDR, NAC_STANDIN_ADDR and NAC_DATA_DIR), and checks what each
// step reads back: the second pass must flag and clear like the first.
func TestReadmeTryIt(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"bash", "curl", "jq", "openssl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the README's Try it needs %s, which is not installed", tool)
		}
	}
	block := tryItBlock(t)
	dir := t.TempDir()
	// The block's nacctl, as make build makes it.
	nacctl := filepath.Join(t.TempDir(), "nacctl")
	if out, err := exec.Command("go", "build", "-o", nacctl, "../nacctl/cmd/nacctl").CombinedOutput(); err != nil {
		t.Fatalf("build nacctl: %v\n%s", err, out)
	}
	stack, _ := startStack(t, dir)
	host := func(raw string) string {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		return u.Host
	}
	for pass := 1; pass <= 2; pass++ {
		cmd := exec.Command("bash", "-c", block)
		cmd.Dir = filepath.Join("..", "..")
		cmd.Env = append(os.Environ(), "NAC_HTTP_ADDR="+host(stack.HTTPURL), "NAC_STANDIN_ADDR="+host(stack.StandinURL), "NAC_DATA_DIR="+dir,
			"NACCTL="+nacctl)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("pass %d: %v\n%s", pass, err, out)
		}
		checkTryIt(t, pass, string(out))
	}
}

func checkTryIt(t *testing.T, pass int, out string) {
	t.Helper()
	type readBack struct {
		Flag      *int    `json:"flag"`
		Reason    *string `json:"reason"`
		Suggested *string `json:"suggested"`
		JobTitle  string  `json:"jobtitle"`
		Account   string  `json:"account"`
	}
	var flags []readBack
	var edited bool
	var lists []string
	for line := range strings.SplitSeq(out, "\n") {
		var rb readBack
		switch {
		case strings.HasPrefix(line, `{"flag":`):
			if err := json.Unmarshal([]byte(line), &rb); err != nil || rb.Flag == nil {
				t.Fatalf("pass %d: flag line %q: %v", pass, line, err)
			}
			flags = append(flags, rb)
		case strings.HasPrefix(line, `{"jobtitle":`):
			edited = json.Unmarshal([]byte(line), &rb) == nil && rb.JobTitle == "Procurement Manager" && rb.Account == devstack.DemoAccountID
		case strings.HasPrefix(line, "["):
			lists = append(lists, line)
		}
	}
	if !edited {
		t.Errorf("pass %d: the seller's edit was not read back:\n%s", pass, out)
	}
	want := []int{1, 0, 1, 0} // the profile, without and with the sync user, the move
	if len(flags) != len(want) {
		t.Fatalf("pass %d: %d flag read-backs, want %d:\n%s", pass, len(flags), len(want), out)
	}
	for i, w := range want {
		if *flags[i].Flag != w {
			t.Errorf("pass %d: read-back %d is flag %d, want %d:\n%s", pass, i+1, *flags[i].Flag, w, out)
		}
	}
	if r, s := flags[0].Reason, flags[0].Suggested; r == nil || !strings.HasPrefix(*r, "Left Contoso") || s == nil || *s != "Fabrikam, Inc." {
		t.Errorf("pass %d: the flag's evidence read back as %v, %v", pass, r, s)
	}
	if flags[3].Reason != nil || flags[3].Suggested != nil {
		t.Errorf("pass %d: after the move the evidence is still there: %v", pass, flags[3])
	}
	// The view as the seller, then the sync users without and with them.
	if len(lists) != 3 || !strings.Contains(lists[0], devstack.DemoContactID) ||
		strings.Contains(lists[1], devstack.DemoSyncUserID) || !strings.Contains(lists[2], devstack.DemoSyncUserID) {
		t.Errorf("pass %d: the view and the sync users read back as %q", pass, lists)
	}
	// nacctl explains the flag and lists the demo opportunity at risk.
	if !strings.Contains(out, "contact "+devstack.DemoContactID+" of organization") || !strings.Contains(out, "Not at Company: left Contoso") ||
		strings.Count(out, devstack.DemoOpportunityID) < 2 {
		t.Errorf("pass %d: nacctl explain and list at-risk said:\n%s", pass, out)
	}
	for _, status := range []string{`"outcome":"accepted"`, `"status":401`, `"status":400`} {
		if !strings.Contains(out, status) {
			t.Errorf("pass %d: no %s among the hand-posted webhooks' answers", pass, status)
		}
	}
}
