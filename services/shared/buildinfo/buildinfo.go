// Package buildinfo tells which build of notatcompany is running: the
// version, commit and date the release build stamps into every binary with
// -ldflags "-X", shown by --version and exported as the nac_build_info metric.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Stamped by the linker (-X <this package>.version=…); -X can only set
// package-level string variables, so these three are the exception to "no
// globals". Nothing assigns them at run time. An unstamped build (go run,
// go test) reports "dev".
var (
	version = ""
	commit  = ""
	date    = ""
)

// Info is one binary's build.
type Info struct {
	Version   string
	Commit    string
	Date      string // RFC 3339, UTC
	GoVersion string
}

// Get returns the build of the running binary.
func Get() Info {
	return resolve(version, commit, date, debug.ReadBuildInfo)
}

// resolve fills what was not stamped from the module build information, or
// "dev" and "unknown".
func resolve(v, c, d string, read func() (*debug.BuildInfo, bool)) Info {
	in := Info{Version: v, Commit: c, Date: d, GoVersion: runtime.Version()}
	if bi, ok := read(); ok {
		if in.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			in.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && in.Commit == "":
				in.Commit = s.Value
			case s.Key == "vcs.time" && in.Date == "":
				in.Date = s.Value
			}
		}
	}
	if in.Version == "" {
		in.Version = "dev"
	}
	if in.Commit == "" {
		in.Commit = "unknown"
	}
	if in.Date == "" {
		in.Date = "unknown"
	}
	return in
}

// String is the line --version prints after the program's name.
func (in Info) String() string {
	return fmt.Sprintf("%s (commit %s, built %s, %s)", in.Version, in.Commit, in.Date, in.GoVersion)
}

// Collector is the constant gauge nac_build_info{version,commit,date,goversion} 1,
// so that dashboards can tell which build each pod runs.
func (in Info) Collector() prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "nac_build_info",
		Help: "The running build: always 1, labelled with its version, commit, date and Go version.",
		ConstLabels: prometheus.Labels{
			"version": in.Version, "commit": in.Commit, "date": in.Date, "goversion": in.GoVersion,
		},
	}, func() float64 { return 1 })
}
