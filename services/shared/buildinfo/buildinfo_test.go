package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestResolve(t *testing.T) {
	vcs := func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{
			Main: debug.Module{Version: "v1.4.0"},
			Settings: []debug.BuildSetting{
				{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.time", Value: "2026-01-02T03:04:05Z"},
			},
		}, true
	}
	devel := func() (*debug.BuildInfo, bool) { return &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, true }
	none := func() (*debug.BuildInfo, bool) { return nil, false }
	for _, tc := range []struct {
		name    string
		v, c, d string
		read    func() (*debug.BuildInfo, bool)
		want    Info
	}{
		{"stamped wins", "1.2.3", "deadbeef", "2026-05-06T07:08:09Z", vcs,
			Info{Version: "1.2.3", Commit: "deadbeef", Date: "2026-05-06T07:08:09Z"}},
		{"module and vcs fill the gaps", "", "", "", vcs,
			Info{Version: "v1.4.0", Commit: "abc123", Date: "2026-01-02T03:04:05Z"}},
		{"a devel build is dev", "", "", "", devel, Info{Version: "dev", Commit: "unknown", Date: "unknown"}},
		{"no build information", "", "", "", none, Info{Version: "dev", Commit: "unknown", Date: "unknown"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.want.GoVersion = runtime.Version()
			if got := resolve(tc.v, tc.c, tc.d, tc.read); got != tc.want {
				t.Errorf("resolve = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestString(t *testing.T) {
	in := Info{Version: "1.2.3", Commit: "deadbeef", Date: "2026-05-06T07:08:09Z", GoVersion: "go1.26.0"}
	if got, want := in.String(), "1.2.3 (commit deadbeef, built 2026-05-06T07:08:09Z, go1.26.0)"; got != want {
		t.Errorf("String = %q, want %q", got, want)
	}
}

func TestCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	in := Info{Version: "1.2.3", Commit: "deadbeef", Date: "2026-05-06T07:08:09Z", GoVersion: "go1.26.0"}
	if err := reg.Register(in.Collector()); err != nil {
		t.Fatal(err)
	}
	want := `# HELP nac_build_info The running build: always 1, labelled with its version, commit, date and Go version.
# TYPE nac_build_info gauge
nac_build_info{commit="deadbeef",date="2026-05-06T07:08:09Z",goversion="go1.26.0",version="1.2.3"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "nac_build_info"); err != nil {
		t.Error(err)
	}
}
