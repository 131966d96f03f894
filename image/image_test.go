package image

import (
	"archive/tar"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"debug/elf"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// selfSignedPEM is a CA certificate made for the test.
func selfSignedPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

type entry struct {
	hdr  *tar.Header
	data []byte
}

// filesystem is the image's flattened file system, by absolute path.
func filesystem(t *testing.T, img v1.Image) map[string]entry {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	fs := map[string]entry{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return fs
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		fs["/"+strings.TrimSuffix(strings.TrimPrefix(hdr.Name, "/"), "/")] = entry{hdr, data}
	}
}

// checkConfig asserts what every image of ours must be: a non-root user
// that /etc/passwd knows, the CA bundle where Go looks, the build's labels,
// and each binary root-owned and executable at its entry point.
func checkConfig(t *testing.T, img v1.Image, bins []Binary, s Stamp, caPEM []byte) map[string]entry {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	uid, gid, ok := strings.Cut(cf.Config.User, ":")
	if n, err := strconv.Atoi(uid); err != nil || n == 0 || !ok {
		t.Errorf("user %q: want a numeric non-root uid:gid", cf.Config.User)
	}
	if n, err := strconv.Atoi(gid); err != nil || n == 0 {
		t.Errorf("user %q: want a non-root group", cf.Config.User)
	}
	if cf.OS != "linux" || cf.Architecture == "" {
		t.Errorf("platform %s/%s", cf.OS, cf.Architecture)
	}
	for k, want := range map[string]string{
		"org.opencontainers.image.version":  s.Version,
		"org.opencontainers.image.revision": s.Commit,
		"org.opencontainers.image.created":  s.DateString(),
		"org.opencontainers.image.source":   Source,
		"org.opencontainers.image.title":    "notatcompany",
	} {
		if got := cf.Config.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}
	if !cf.Created.Time.Equal(s.Date) {
		t.Errorf("created %s, want %s", cf.Created.Time, s.Date)
	}

	fs := filesystem(t, img)
	if e := fs["/etc/passwd"]; !strings.Contains(string(e.data), ":"+uid+":"+gid+":") {
		t.Errorf("/etc/passwd has no entry for %s:\n%s", cf.Config.User, e.data)
	}
	if e, ok := fs[CABundle]; !ok || (caPEM != nil && !bytes.Equal(e.data, caPEM)) ||
		!x509.NewCertPool().AppendCertsFromPEM(e.data) {
		t.Errorf("%s: missing or not the CA bundle given", CABundle)
	}
	for _, b := range bins {
		e, ok := fs[b.Path()]
		if !ok {
			t.Errorf("entry point %s missing", b.Path())
			continue
		}
		if e.hdr.Typeflag != tar.TypeReg || e.hdr.Mode != 0o755 || e.hdr.Uid != 0 || e.hdr.Gid != 0 {
			t.Errorf("%s: type %c mode %o owner %d:%d, want a file 0755 owned by root", b.Path(), e.hdr.Typeflag, e.hdr.Mode, e.hdr.Uid, e.hdr.Gid)
		}
	}
	for path, e := range fs {
		if e.hdr.Uid != 0 || e.hdr.Mode&0o022 != 0 {
			t.Errorf("%s: owner %d, mode %o: the non-root user must not be able to change it", path, e.hdr.Uid, e.hdr.Mode)
		}
	}
	return fs
}

func TestAssemble(t *testing.T) {
	dir := t.TempDir()
	bins := []Binary{{"ingest", "./x"}, {"writer", "./y"}}
	for _, b := range bins {
		if err := os.WriteFile(filepath.Join(dir, b.Name), []byte("binary of "+b.Name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ca := selfSignedPEM(t)
	s := Stamp{Version: "1.2.3", Commit: "0123abcd", Date: time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)}
	spec := Spec{Stamp: s, Arch: "arm64", BinDir: dir, Binaries: bins, CAPEM: ca}
	img, err := Assemble(spec)
	if err != nil {
		t.Fatal(err)
	}
	fs := checkConfig(t, img, bins, s, ca)
	if got := string(fs["/writer"].data); got != "binary of writer" {
		t.Errorf("/writer holds %q", got)
	}
	if cf, _ := img.ConfigFile(); cf.Architecture != "arm64" || cf.Config.User != "65532:65532" {
		t.Errorf("arch %s user %s", cf.Architecture, cf.Config.User)
	}

	// The same inputs make the same image.
	again, err := Assemble(spec)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("digests %s and %s of the same inputs differ", d1, d2)
	}

	// Every problem is reported at once.
	_, err = Assemble(Spec{Stamp: Stamp{Commit: "c"}, BinDir: dir, Binaries: bins, CAPEM: []byte("not pem")})
	for _, want := range []string{"version", "date", "arch", "CA bundle"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Assemble of a bad spec = %v, want it to name %s", err, want)
		}
	}
}

// Write and Read agree: the layout holds an image index of every
// architecture, tagged with the version, each image as it was assembled;
// the tarball is written beside it.
func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	bins := []Binary{{"ingest", "./x"}}
	if err := os.WriteFile(filepath.Join(dir, "ingest"), []byte("binary of ingest"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := Stamp{Version: "1.2.3", Commit: "0123abcd", Date: time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)}
	var images []v1.Image
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := Assemble(Spec{Stamp: s, Arch: arch, BinDir: dir, Binaries: bins, CAPEM: selfSignedPEM(t)})
		if err != nil {
			t.Fatal(err)
		}
		images = append(images, img)
	}
	out := t.TempDir()
	tag, err := Write(out, "example.test/nac", s.Version, images)
	if err != nil {
		t.Fatal(err)
	}
	if tag.String() != "example.test/nac:1.2.3" {
		t.Errorf("tag %s", tag)
	}
	got, ref, err := Read(filepath.Join(out, LayoutDir))
	if err != nil {
		t.Fatal(err)
	}
	if ref != s.Version || len(got) != 2 {
		t.Fatalf("read %d images named %q, want 2 named %q", len(got), ref, s.Version)
	}
	for i, arch := range []string{"amd64", "arm64"} {
		want, _ := images[i].Digest()
		img, ok := got[arch]
		if !ok {
			t.Errorf("no %s image in the layout", arch)
			continue
		}
		if d, err := img.Digest(); err != nil || d != want {
			t.Errorf("%s image %s, %v; want %s as assembled", arch, d, err, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(out, TarballFile)); err != nil || fi.Size() == 0 {
		t.Errorf("tarball: %v", err)
	}
}

func TestBinariesListsTheServices(t *testing.T) {
	var names []string
	for _, b := range Binaries() {
		names = append(names, b.Name)
		if fi, err := os.Stat(filepath.Join("..", b.Package)); err != nil || !fi.IsDir() {
			t.Errorf("%s: package %s is not in the repository", b.Name, b.Package)
		}
	}
	if got := strings.Join(names[:3], ","); got != "ingest,validator,writer" {
		t.Errorf("binaries %v", names)
	}
}

// TestImage builds the image as `make image` does (cmd/mkimage, here for
// this machine's architecture and a CA made for the test), then checks it
// from its OCI layout and runs every binary taken out of it with --version.
// With NAC_IMAGE_LAYOUT set (make image), it checks that layout instead,
// against the build its labels name.
//
// mkimage runs as its own process, built without the race detector: the
// build gzips some 50 MB of binaries, ten times slower under -race, and
// TestAssemble and TestWriteRead run the same code under it. Compile runs
// here as well: the image must hold exactly the binaries it builds.
func TestImage(t *testing.T) {
	root := ".."
	bins := Binaries()
	dir := os.Getenv("NAC_IMAGE_LAYOUT")
	var s Stamp
	var caPEM []byte
	compiled := map[string][]byte{} // by name, when the test built the image
	if dir == "" {
		s = Stamp{Version: "9.8.7-test", Commit: "feedc0de", Date: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
		out := t.TempDir()
		caPEM = selfSignedPEM(t)
		caFile := filepath.Join(out, "ca.pem")
		if err := os.WriteFile(caFile, caPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.CommandContext(t.Context(), "go", "run", "./image/cmd/mkimage", "-root", ".", "-out", out,
			"-repository", "example.test/nac", "-arch", runtime.GOARCH, "-ca", caFile,
			"-version", s.Version, "-commit", s.Commit, "-date", s.DateString())
		cmd.Dir = root
		if log, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mkimage: %v\n%s", err, log)
		}
		dir = filepath.Join(out, LayoutDir)

		binDir := filepath.Join(t.TempDir(), "bin")
		var log bytes.Buffer
		if err := Compile(t.Context(), root, binDir, runtime.GOARCH, bins, s, &log); err != nil {
			t.Fatalf("%v\n%s", err, log.String())
		}
		for _, b := range bins {
			data, err := os.ReadFile(filepath.Join(binDir, b.Name))
			if err != nil {
				t.Fatal(err)
			}
			compiled[b.Name] = data
		}
	}
	images, ref, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	img, ok := images[runtime.GOARCH]
	if !ok {
		t.Fatalf("%s has no linux/%s image (has %d)", dir, runtime.GOARCH, len(images))
	}
	if s.Version == "" {
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		l := cf.Config.Labels
		date, err := time.Parse(time.RFC3339, l["org.opencontainers.image.created"])
		if err != nil {
			t.Fatalf("label created: %v", err)
		}
		s = Stamp{Version: l["org.opencontainers.image.version"], Commit: l["org.opencontainers.image.revision"], Date: date}
	}
	if ref != s.Version {
		t.Errorf("layout names the image %q, want the version %q", ref, s.Version)
	}
	fs := checkConfig(t, img, bins, s, caPEM)

	run := t.TempDir()
	for _, b := range bins {
		path := filepath.Join(run, b.Name)
		if err := os.WriteFile(path, fs[b.Path()].data, 0o755); err != nil {
			t.Fatal(err)
		}
		if want, ok := compiled[b.Name]; ok && !bytes.Equal(fs[b.Path()].data, want) {
			t.Errorf("%s in the image (%d bytes) is not what Compile builds of the same stamp (%d bytes)", b.Name, len(fs[b.Path()].data), len(want))
		}
		if f, err := elf.Open(path); err != nil {
			t.Errorf("%s: not an ELF binary: %v", b.Name, err)
		} else {
			for _, p := range f.Progs {
				if p.Type == elf.PT_INTERP {
					t.Errorf("%s is dynamically linked: the image has no libc", b.Name)
				}
			}
			f.Close()
		}
		cmd := exec.CommandContext(t.Context(), path, "--version")
		cmd.Env = []string{} // nothing from this machine
		out, err := cmd.CombinedOutput()
		want := b.Name + " " + s.Version + " (commit " + s.Commit + ", built " + s.DateString() + ", go"
		if err != nil || !strings.HasPrefix(string(out), want) {
			t.Errorf("%s --version = %q, %v; want %q…", b.Name, out, err, want)
		}
	}
}
