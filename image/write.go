package image

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Outputs are the files Write produces under its directory.
const (
	// LayoutDir is an OCI image layout (crane push, skopeo copy oci:…).
	LayoutDir = "oci"
	// TarballFile is a tarball `docker load` and `podman load` read.
	TarballFile = "notatcompany.tar"
)

// refNameAnnotation names an image inside an OCI layout.
const refNameAnnotation = "org.opencontainers.image.ref.name"

// Write replaces dir's outputs with images (one per architecture) tagged
// repository:<version>: the OCI layout holds an image index of them all,
// the tarball the first.
func Write(dir, repository string, version string, images []v1.Image) (name.Tag, error) {
	if len(images) == 0 {
		return name.Tag{}, errors.New("no image to write")
	}
	tag, err := name.NewTag(repository + ":" + version)
	if err != nil {
		return name.Tag{}, fmt.Errorf("image name: %w", err)
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, img := range images {
		cf, err := img.ConfigFile()
		if err != nil {
			return tag, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: cf.OS, Architecture: cf.Architecture},
		}})
	}
	layoutPath := filepath.Join(dir, LayoutDir)
	if err := os.RemoveAll(layoutPath); err != nil {
		return tag, err
	}
	p, err := layout.Write(layoutPath, empty.Index)
	if err != nil {
		return tag, fmt.Errorf("OCI layout: %w", err)
	}
	if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{refNameAnnotation: tag.TagStr()})); err != nil {
		return tag, fmt.Errorf("OCI layout: %w", err)
	}
	if err := tarball.WriteToFile(filepath.Join(dir, TarballFile), tag, images[0]); err != nil {
		return tag, fmt.Errorf("tarball: %w", err)
	}
	return tag, nil
}

// Read returns the images of the OCI layout at dir, by architecture, and
// the tag it names them by.
func Read(dir string) (map[string]v1.Image, string, error) {
	root, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return nil, "", err
	}
	top, err := root.IndexManifest()
	if err != nil {
		return nil, "", err
	}
	if len(top.Manifests) != 1 {
		return nil, "", fmt.Errorf("%s: %d entries in index.json, want 1", dir, len(top.Manifests))
	}
	ref := top.Manifests[0].Annotations[refNameAnnotation]
	idx, err := root.ImageIndex(top.Manifests[0].Digest)
	if err != nil {
		return nil, "", err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, "", err
	}
	images := map[string]v1.Image{}
	for _, d := range im.Manifests {
		if d.Platform == nil {
			return nil, "", fmt.Errorf("%s: manifest %s without a platform", dir, d.Digest)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			return nil, "", err
		}
		images[d.Platform.Architecture] = img
	}
	return images, ref, nil
}
