// imagetool assembles container images as docker-archive tarballs without a Docker engine,
// for a local cluster whose containerd imports them with `ctr -n k8s.io images import`.
//
// It is driven by hack/image/build.sh and lives in its own Go module so that
// go-containerregistry stays out of the driver's go.mod.
//
//	imagetool build SPEC.json       assemble one image and write it as a docker-archive tar
//	imagetool inspect [-files] TAR  print the manifest, the config and the layers of an archive
//	imagetool static FILE...        fail unless every FILE is a statically linked ELF executable
//
// SPEC.json:
//
//	{
//	  "ref":     "localnvme.local/localnvme:v1",    // repo:tag written into manifest.json
//	  "out":     "/path/localnvme.tar",
//	  "created": "2025-01-01T00:00:00Z",             // optional; default 1970-01-01 (reproducible)
//	  "config":  { "Env": [...], "Entrypoint": [...], "Cmd": [...], "User": "...", ... },
//	  "layers": [
//	    { "tar": "/path/rootfs.tar.gz", "comment": "debootstrap ..." },   // a tar (gzip or not) as is
//	    { "comment": "COPY ...", "entries": [                           // a layer built here
//	        { "path": "usr/local/bin/localnvme", "src": "/path/bin", "mode": "0755", "static": true },
//	        { "path": "etc/passwd", "content": "root:x:0:0:root:/:/sbin/nologin\n" },
//	        { "path": "bin/sh", "symlink": "busybox" },
//	        { "path": "tmp", "dir": true, "mode": "1777" } ] }
//	  ]
//	}
//
// Built layers are deterministic: entries are sorted, owned by 0:0 and stamped with the image's
// creation time, and missing parent directories are added (0755). The platform is linux/amd64.
package main

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

type spec struct {
	Ref     string    `json:"ref"`
	Out     string    `json:"out"`
	Created string    `json:"created"`
	Config  v1.Config `json:"config"`
	Layers  []layer   `json:"layers"`
}

type layer struct {
	Tar     string  `json:"tar"`
	Comment string  `json:"comment"`
	Entries []entry `json:"entries"`
}

type entry struct {
	Path    string  `json:"path"`    // inside the image, relative ("usr/bin/x"; a leading / is dropped)
	Src     string  `json:"src"`     // regular file: copy from this host file
	Content *string `json:"content"` // regular file: these bytes
	Symlink string  `json:"symlink"` // symbolic link to this target
	Dir     bool    `json:"dir"`     // directory
	Mode    string  `json:"mode"`    // octal; default 0755 (dirs, files from src) or 0644 (content)
	Static  bool    `json:"static"`  // src must be a statically linked ELF executable
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "build":
		if len(os.Args) != 3 {
			usage()
		}
		err = build(os.Args[2])
	case "inspect":
		fs := flag.NewFlagSet("inspect", flag.ExitOnError)
		files := fs.Bool("files", false, "list every layer's files")
		_ = fs.Parse(os.Args[2:])
		if fs.NArg() != 1 {
			usage()
		}
		err = inspect(fs.Arg(0), *files)
	case "static":
		for _, f := range os.Args[2:] {
			if err = checkStatic(f); err != nil {
				break
			}
		}
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "imagetool: %v\n", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: imagetool build SPEC.json | imagetool inspect [-files] TAR | imagetool static FILE...")
	os.Exit(2)
}

func build(specPath string) error {
	raw, err := os.ReadFile(specPath) //nolint:gosec // G703: the build spec named on the command line
	if err != nil {
		return err
	}
	var s spec
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return fmt.Errorf("%s: %w", specPath, err)
	}
	tag, err := name.NewTag(s.Ref, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("ref %q: %w", s.Ref, err)
	}
	if s.Out == "" {
		return errors.New("spec: no out")
	}
	created := time.Unix(0, 0).UTC()
	if s.Created != "" {
		if created, err = time.Parse(time.RFC3339, s.Created); err != nil {
			return fmt.Errorf("created: %w", err)
		}
		created = created.UTC()
	}

	img := empty.Image
	for i, l := range s.Layers {
		var lay v1.Layer
		switch {
		case l.Tar != "" && len(l.Entries) > 0:
			return fmt.Errorf("layer %d: both tar and entries", i)
		case l.Tar != "":
			lay, err = tarball.LayerFromFile(l.Tar)
		default:
			var b []byte
			if b, err = buildLayer(l.Entries, created); err == nil {
				lay, err = tarball.LayerFromOpener(func() (io.ReadCloser, error) {
					return io.NopCloser(bytes.NewReader(b)), nil
				}, tarball.WithCompressedCaching)
			}
		}
		if err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
		comment := l.Comment
		if comment == "" {
			comment = fmt.Sprintf("layer %d", i)
		}
		img, err = mutate.Append(img, mutate.Addendum{
			Layer:   lay,
			History: v1.History{Created: v1.Time{Time: created}, CreatedBy: comment, Comment: "localnvme hack/image/build.sh"},
		})
		if err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
	}

	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.Architecture = "amd64"
	cf.OS = "linux"
	cf.Created = v1.Time{Time: created}
	cf.Config = s.Config
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return err
	}

	// write next to the target and rename: a reader never sees a half-written archive
	tmp := s.Out + ".tmp"
	if err := tarball.WriteToFile(tmp, tag, img); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", s.Out, err)
	}
	if err := os.Rename(tmp, s.Out); err != nil {
		return err
	}
	d, _ := img.Digest()
	cd, _ := img.ConfigName()
	fmt.Printf("%s\t%s\tmanifest %s\tconfig %s\n", s.Ref, s.Out, d, cd)
	return nil
}

// buildLayer returns an uncompressed tar holding the entries plus their missing parents.
func buildLayer(entries []entry, mtime time.Time) ([]byte, error) {
	hdrs := map[string]*tar.Header{}
	bodies := map[string][]byte{}
	for _, e := range entries {
		p := path.Clean(strings.TrimPrefix(e.Path, "/"))
		if p == "." || p == "" || strings.HasPrefix(p, "../") {
			return nil, fmt.Errorf("entry path %q", e.Path)
		}
		if _, dup := hdrs[p]; dup {
			return nil, fmt.Errorf("entry %q given twice", p)
		}
		h := &tar.Header{Name: p, ModTime: mtime, Uname: "root", Gname: "root", Format: tar.FormatPAX}
		var kinds int
		switch {
		case e.Dir:
			kinds++
			h.Typeflag, h.Mode, h.Name = tar.TypeDir, 0o755, p+"/"
		}
		if e.Symlink != "" {
			kinds++
			h.Typeflag, h.Mode, h.Linkname = tar.TypeSymlink, 0o777, e.Symlink
		}
		if e.Content != nil {
			kinds++
			h.Typeflag, h.Mode = tar.TypeReg, 0o644
			bodies[p] = []byte(*e.Content)
		}
		if e.Src != "" {
			kinds++
			b, err := os.ReadFile(e.Src)
			if err != nil {
				return nil, err
			}
			if e.Static {
				if err := checkStatic(e.Src); err != nil {
					return nil, err
				}
			}
			h.Typeflag, h.Mode = tar.TypeReg, 0o755
			bodies[p] = b
		}
		if kinds != 1 {
			return nil, fmt.Errorf("entry %q: exactly one of dir, symlink, content, src", p)
		}
		if e.Mode != "" {
			m, err := strconv.ParseInt(e.Mode, 8, 32)
			if err != nil || m&^0o7777 != 0 {
				return nil, fmt.Errorf("entry %q: mode %q", p, e.Mode)
			}
			h.Mode = m
		}
		h.Size = int64(len(bodies[p]))
		hdrs[p] = h
	}
	// parents
	for p := range hdrs {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			if h, ok := hdrs[d]; ok {
				if h.Typeflag != tar.TypeDir {
					return nil, fmt.Errorf("%q is inside %q, which is not a directory", p, d)
				}
				continue
			}
			hdrs[d] = &tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime,
				Uname: "root", Gname: "root", Format: tar.FormatPAX}
		}
	}
	names := make([]string, 0, len(hdrs))
	for p := range hdrs {
		names = append(names, p)
	}
	sort.Strings(names) // a parent sorts before its children
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range names {
		if err := tw.WriteHeader(hdrs[p]); err != nil {
			return nil, err
		}
		if b := bodies[p]; len(b) > 0 {
			if _, err := tw.Write(b); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// checkStatic fails unless f is an x86-64 ELF executable without a program interpreter
// (a scratch image has no dynamic loader and no libc).
func checkStatic(f string) error {
	ef, err := elf.Open(f)
	if err != nil {
		return fmt.Errorf("%s: not an ELF executable: %w", f, err)
	}
	defer func() { _ = ef.Close() }() // read only
	if ef.Machine != elf.EM_X86_64 {
		return fmt.Errorf("%s: built for %v, not x86-64", f, ef.Machine)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s: dynamically linked (has a program interpreter); build it with CGO_ENABLED=0", f)
		}
	}
	return nil
}

func inspect(p string, files bool) error {
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(p) })
	if err != nil {
		return err
	}
	if len(m) != 1 {
		return fmt.Errorf("%s: %d images in manifest.json, want 1", p, len(m))
	}
	fmt.Printf("archive:  %s\nrepotags: %s\n", p, strings.Join(m[0].RepoTags, " "))
	img, err := tarball.ImageFromPath(p, nil)
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	cfgJSON, _ := json.Marshal(cf.Config)
	fmt.Printf("manifest: %s\nplatform: %s/%s\ncreated:  %s\nconfig:   %s\n", d, cf.OS, cf.Architecture,
		cf.Created.Format(time.RFC3339), cfgJSON)
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	var total, totalU int64
	for i, l := range layers {
		sz, err := l.Size()
		if err != nil {
			return err
		}
		ld, _ := l.Digest()
		var n, usz int64
		rc, err := l.Uncompressed()
		if err != nil {
			return err
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				_ = rc.Close()
				return fmt.Errorf("layer %d: %w", i, err)
			}
			n++
			usz += h.Size
			if files {
				fmt.Printf("    %s %8d %s%s\n", os.FileMode(h.Mode).String()[1:], h.Size, filepath.Clean("/"+h.Name), linkSuffix(h))
			}
		}
		_ = rc.Close() // read only: the listing is complete
		total += sz
		totalU += usz
		by := ""
		if i < len(cf.History) {
			by = cf.History[i].CreatedBy
		}
		fmt.Printf("layer %d:  %s  %s compressed, %s in %d entries  (%s)\n", i, ld.String()[:19], human(sz), human(usz), n, by)
	}
	fmt.Printf("size:     %s compressed, %s unpacked (file contents)\n", human(total), human(totalU))
	return nil
}

func linkSuffix(h *tar.Header) string {
	switch h.Typeflag {
	case tar.TypeSymlink:
		return " -> " + h.Linkname
	case tar.TypeLink:
		return " => " + h.Linkname
	}
	return ""
}

func human(n int64) string {
	const mi = 1 << 20
	if n >= mi {
		return fmt.Sprintf("%.1f MiB", float64(n)/mi)
	}
	return fmt.Sprintf("%.1f KiB", float64(n)/1024)
}
