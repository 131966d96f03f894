// Command mkimage builds the notatcompany image without a container daemon:
// it compiles the binaries of image.Binaries statically for each
// architecture, stamps the build, and writes an OCI layout and a tarball
// (`make image`). With -compile-only it writes the binaries alone, for the
// Dockerfile.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/notatcompany/notatcompany/image"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		stop()
		os.Exit(1)
	}
}

type config struct {
	root, out, repository, ca string
	arches                    []string
	stamp                     image.Stamp
	compileOnly               bool
}

func parse(args []string, stderr io.Writer) (config, error) {
	var c config
	var arches, date string
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.root, "root", ".", "repository root")
	fs.StringVar(&c.out, "out", ".bin/image", "output directory: oci/ and notatcompany.tar (with -compile-only: the binaries)")
	fs.StringVar(&c.repository, "repository", "ghcr.io/notatcompany/notatcompany", "image repository the tarball is tagged with")
	fs.StringVar(&c.ca, "ca", "/etc/ssl/certs/ca-certificates.crt", "PEM bundle of the CA certificates the image trusts")
	fs.StringVar(&arches, "arch", "amd64", "GOARCH list, comma-separated (amd64,arm64)")
	fs.StringVar(&c.stamp.Version, "version", "dev", "version stamped into the binaries and the labels")
	fs.StringVar(&c.stamp.Commit, "commit", "unknown", "commit stamped into the binaries and the labels")
	fs.StringVar(&date, "date", "", "build date, RFC 3339 (the commit's date keeps the image reproducible); empty: now")
	fs.BoolVar(&c.compileOnly, "compile-only", false, "write the binaries of the first -arch to -out, and no image")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " ")))
	}
	for _, a := range strings.Split(arches, ",") {
		if a = strings.TrimSpace(a); a != "" {
			c.arches = append(c.arches, a)
		}
	}
	if len(c.arches) == 0 {
		errs = append(errs, errors.New("-arch: at least one"))
	}
	c.stamp.Date = time.Now().UTC().Truncate(time.Second)
	if date != "" {
		d, err := time.Parse(time.RFC3339, date)
		if err != nil {
			errs = append(errs, fmt.Errorf("-date %q: want RFC 3339", date))
		}
		c.stamp.Date = d
	}
	if err := c.stamp.Validate(); err != nil {
		errs = append(errs, err)
	}
	return c, errors.Join(errs...)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parse(args, stderr)
	if err != nil {
		return err
	}
	bins := image.Binaries()
	if c.compileOnly {
		return image.Compile(ctx, c.root, c.out, c.arches[0], bins, c.stamp, stderr)
	}
	caPEM, err := os.ReadFile(c.ca)
	if err != nil {
		return fmt.Errorf("CA bundle (Debian: apt-get install ca-certificates; or pass -ca): %w", err)
	}
	var images []v1.Image
	for _, arch := range c.arches {
		binDir := filepath.Join(c.out, "bin", "linux-"+arch)
		if err := image.Compile(ctx, c.root, binDir, arch, bins, c.stamp, stderr); err != nil {
			return err
		}
		img, err := image.Assemble(image.Spec{Stamp: c.stamp, Arch: arch, BinDir: binDir, Binaries: bins, CAPEM: caPEM})
		if err != nil {
			return fmt.Errorf("linux/%s: %w", arch, err)
		}
		images = append(images, img)
	}
	tag, err := image.Write(c.out, c.repository, c.stamp.Version, images)
	if err != nil {
		return err
	}
	digest, err := images[0].Digest()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "image %s (linux/%s %s)\n  OCI layout: %s\n  tarball:    %s\n",
		tag, c.arches[0], digest, filepath.Join(c.out, image.LayoutDir), filepath.Join(c.out, image.TarballFile))
	return nil
}
