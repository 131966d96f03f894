package image

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The user every process of the image runs as: the "nonroot" user of the
// distroless images, which the Dockerfile's base provides and the chart's
// securityContext names.
const (
	UID = 65532
	GID = 65532
	// CABundle is where the CA certificates are; Go's crypto/x509 looks there.
	CABundle = "/etc/ssl/certs/ca-certificates.crt"
	// Source is the repository the labels point at.
	Source = "https://github.com/notatcompany/notatcompany"
)

// Spec is what one image is made of.
type Spec struct {
	Stamp Stamp
	// Arch is the GOARCH of the binaries (amd64, arm64).
	Arch string
	// BinDir holds the compiled binaries, by name.
	BinDir   string
	Binaries []Binary
	// CAPEM is the PEM bundle of CA certificates to trust.
	CAPEM []byte
}

// Labels are the image's OCI annotations of its build.
func (s Spec) Labels() map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "notatcompany",
		"org.opencontainers.image.description": "Keeps Dynamics 365 contacts' Not at Company flag current (ingest, validator, writer on NATS JetStream).",
		"org.opencontainers.image.version":     s.Stamp.Version,
		"org.opencontainers.image.revision":    s.Stamp.Commit,
		"org.opencontainers.image.created":     s.Stamp.DateString(),
		"org.opencontainers.image.source":      Source,
	}
}

// Assemble returns the image of spec: a base layer (CA bundle, passwd,
// group) and a layer of the binaries, every file owned by root and dated
// the build's date, so that the same inputs give the same digest.
func Assemble(spec Spec) (v1.Image, error) {
	if err := spec.validate(); err != nil {
		return nil, err
	}
	base, err := layer(spec, baseFiles(spec.CAPEM))
	if err != nil {
		return nil, fmt.Errorf("base layer: %w", err)
	}
	var bins []file
	for _, b := range spec.Binaries {
		data, err := os.ReadFile(filepath.Join(spec.BinDir, b.Name))
		if err != nil {
			return nil, fmt.Errorf("binary %s: %w", b.Name, err)
		}
		bins = append(bins, file{path: b.Path(), mode: 0o755, data: data})
	}
	binLayer, err := layer(spec, bins)
	if err != nil {
		return nil, fmt.Errorf("binaries layer: %w", err)
	}

	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	created := v1.Time{Time: spec.Stamp.Date.UTC()}
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, History: v1.History{Created: created, CreatedBy: "notatcompany mkimage: CA bundle, passwd, group", Comment: "base"}},
		mutate.Addendum{Layer: binLayer, History: v1.History{Created: created, CreatedBy: "notatcompany mkimage: " + names(spec.Binaries), Comment: "binaries"}},
	)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = spec.Arch, "linux"
	cf.Created = created
	cf.Config = v1.Config{
		User:       fmt.Sprintf("%d:%d", UID, GID),
		Env:        []string{"PATH=/", "SSL_CERT_FILE=" + CABundle},
		WorkingDir: "/",
		Labels:     spec.Labels(),
	}
	return mutate.ConfigFile(img, cf)
}

func (s Spec) validate() error {
	var errs []error
	if err := s.Stamp.Validate(); err != nil {
		errs = append(errs, err)
	}
	if s.Arch == "" {
		errs = append(errs, errors.New("arch: required"))
	}
	if len(s.Binaries) == 0 {
		errs = append(errs, errors.New("binaries: none listed"))
	}
	if !x509.NewCertPool().AppendCertsFromPEM(s.CAPEM) {
		errs = append(errs, errors.New("CA bundle: no PEM certificate in it"))
	}
	return errors.Join(errs...)
}

func names(bins []Binary) string {
	var ns []string
	for _, b := range bins {
		ns = append(ns, b.Path())
	}
	return strings.Join(ns, " ")
}

type file struct {
	path string
	mode int64
	data []byte
}

// baseFiles are what a static Go binary needs of an operating system.
func baseFiles(caPEM []byte) []file {
	return []file{
		{path: "/etc/passwd", mode: 0o644, data: fmt.Appendf(nil,
			"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", UID, GID)},
		{path: "/etc/group", mode: 0o644, data: fmt.Appendf(nil, "root:x:0:\nnonroot:x:%d:\n", GID)},
		// Host names resolve from /etc/hosts first, then DNS, as glibc would.
		{path: "/etc/nsswitch.conf", mode: 0o644, data: []byte("hosts: files dns\n")},
		{path: CABundle, mode: 0o644, data: caPEM},
	}
}

// layer is a gzipped tar of files and their parent directories, in name
// order, owned by root, dated the build's date.
func layer(spec Spec, files []file) (v1.Layer, error) {
	dirs := map[string]bool{}
	for _, f := range files {
		for d := filepath.Dir(f.path); d != "/"; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	type entry struct {
		hdr  *tar.Header
		data []byte
	}
	var entries []entry
	for d := range dirs {
		entries = append(entries, entry{hdr: &tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755}})
	}
	for _, f := range files {
		entries = append(entries, entry{hdr: &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(f.path, "/"), Mode: f.mode, Size: int64(len(f.data))}, data: f.data})
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].hdr.Name < entries[j].hdr.Name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		e.hdr.ModTime = spec.Stamp.Date.UTC()
		e.hdr.Uname, e.hdr.Gname = "root", "root"
		if err := tw.WriteHeader(e.hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
}
