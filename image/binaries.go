// Package image builds the container image of notatcompany without a
// container daemon: it compiles the service binaries statically, with the
// build stamped in, and assembles them with a CA bundle and a non-root user
// into an OCI image (see cmd/mkimage and `make image`). The Dockerfile runs
// the same compile step, so both images hold the same binaries.
package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Binary is one program of the image, installed at /<Name>.
type Binary struct {
	Name string
	// Package is the main package, relative to the repository root.
	Package string
}

// Path is where the binary is in the image.
func (b Binary) Path() string { return "/" + b.Name }

// Binaries is the one list of the programs the image holds, read by
// `make image`, the Dockerfile (through mkimage -compile-only) and the
// image test alike.
func Binaries() []Binary {
	return []Binary{
		{"ingest", "./services/ingest/cmd/ingest"},
		{"validator", "./services/validator/cmd/validator"},
		{"writer", "./services/writer/cmd/writer"},
		{"nacctl", "./services/nacctl/cmd/nacctl"},
	}
}

// buildInfoPackage holds the variables the linker stamps.
const buildInfoPackage = "github.com/notatcompany/notatcompany/services/shared/buildinfo"

// Stamp is the build written into every binary and into the image's labels.
type Stamp struct {
	Version string
	Commit  string
	Date    time.Time
}

// Validate reports every problem of s.
func (s Stamp) Validate() error {
	var errs []error
	if s.Version == "" || strings.ContainsAny(s.Version, " '\"") {
		errs = append(errs, fmt.Errorf("version %q: want a non-empty word", s.Version))
	}
	if s.Commit == "" || strings.ContainsAny(s.Commit, " '\"") {
		errs = append(errs, fmt.Errorf("commit %q: want a non-empty word", s.Commit))
	}
	if s.Date.IsZero() {
		errs = append(errs, errors.New("date: required"))
	}
	return errors.Join(errs...)
}

// DateString is the date as every binary and label shows it.
func (s Stamp) DateString() string { return s.Date.UTC().Format(time.RFC3339) }

// LDFlags are the linker flags that stamp s and strip the symbol table.
func (s Stamp) LDFlags() string {
	return fmt.Sprintf("-s -w -X %[1]s.version=%[2]s -X %[1]s.commit=%[3]s -X %[1]s.date=%[4]s",
		buildInfoPackage, s.Version, s.Commit, s.DateString())
}

// Compile builds bins from the repository at root into dir/<name>, as
// static Linux binaries for goarch with s stamped in. The go command's own
// output goes to logTo.
func Compile(ctx context.Context, root, dir, goarch string, bins []Binary, s Stamp, logTo io.Writer) error {
	if err := s.Validate(); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	args := []string{"build", "-trimpath", "-buildvcs=false", "-ldflags=" + s.LDFlags(), "-o", dir + string(os.PathSeparator)}
	for _, b := range bins {
		args = append(args, b.Package)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch)
	cmd.Stdout, cmd.Stderr = logTo, logTo
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build for linux/%s: %w", goarch, err)
	}
	for _, b := range bins {
		if _, err := os.Stat(filepath.Join(dir, b.Name)); err != nil {
			return fmt.Errorf("go build did not write %s: %w", b.Name, err)
		}
	}
	return nil
}
