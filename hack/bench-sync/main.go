// Command bench-sync generates the data set of the sync benchmark into a
// registry and writes the inputs of each tool compared (run.sh drives it).
//
// The data set follows the peer measurements in the shared registry notes:
// 20 repositories, 25 tags, about 480 MB in 126 blobs; 4 Docker manifest
// lists of 2 platforms, 4 OCI indexes of 3 platforms, 12 single images (5
// of them also tagged "latest"); four base image families whose layers are
// shared by 2 to 7 repositories each. Layer
// bytes are seeded ChaCha8 output in a tar in a gzip stream: incompressible
// and the same every run for a given -seed.
//
//	go run ./hack/bench-sync -source 127.0.0.1:5001 -target 127.0.0.1:5002 -out DIR
//
// writes DIR/images.txt (detour), DIR/detour.yaml, DIR/regsync.yml and
// DIR/skopeo.yml, and prints the blob count and bytes.
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Sizes: the base layers of common distro images are 25 to 30 MB with a
// small second layer (CA certificates, users), small bases a few MB;
// application layers range from tens of kilobytes to tens of megabytes.
const (
	ownTotal = 350 << 20 // bytes of the non-base layers, to land near 480 MB in all
	minLayer = 64 << 10
	maxLayer = 24 << 20
)

// bases are the base image families: layer sizes per architecture. Each
// family is shared by a handful of repositories, as images built FROM the
// same distro are; no layer is shared by more than 7 of the 20.
var bases = map[string]map[string][]int64{
	"debian":     {"amd64": {28 << 20, 4 << 20}, "arm64": {26 << 20, 4 << 20}, "ppc64le": {27 << 20, 3 << 20}},
	"alpine":     {"amd64": {3300 << 10}, "arm64": {3200 << 10}, "ppc64le": {3400 << 10}},
	"distroless": {"amd64": {2 << 20, 600 << 10}},
	"ubuntu":     {"amd64": {29 << 20}},
}

const (
	dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	dockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	dockerConfig   = "application/vnd.docker.container.image.v1+json"
	dockerLayer    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	ociManifest    = "application/vnd.oci.image.manifest.v1+json"
	ociIndex       = "application/vnd.oci.image.index.v1+json"
	ociConfig      = "application/vnd.oci.image.config.v1+json"
	ociLayer       = "application/vnd.oci.image.layer.v1.tar+gzip"
)

type descriptor struct {
	MediaType string            `json:"mediaType"`
	Size      int64             `json:"size"`
	Digest    string            `json:"digest"`
	Platform  map[string]string `json:"platform,omitempty"`
}

type gen struct {
	host  string
	seed  uint64
	sizes *rand.Rand
	next  uint64 // stream number of the next layer
	// blobs already in the registry: digest -> a repository holding it
	where   map[string]string
	shared  map[string]descriptor // named shared layers
	diffIDs map[string]string     // layer digest -> digest of its tar
	nblobs  int
	nbytes  int64
	layerSz []int64 // sizes of the own layers, drawn up front
	client  *http.Client
}

func main() {
	source := flag.String("source", "", "registry to fill, host:port (plain HTTP)")
	target := flag.String("target", "", "registry the tools copy to, host:port")
	out := flag.String("out", "", "directory for the tools' inputs")
	seed := flag.Uint64("seed", 1, "seed of sizes and bytes")
	regsyncParallel := flag.Int("regsync-parallel", 4, "defaults.parallel of regsync.yml (0: one image at a time)")
	flag.Parse()
	if *source == "" || *target == "" || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*source, *target, *out, *seed, *regsyncParallel); err != nil {
		fmt.Fprintln(os.Stderr, "bench-sync:", err)
		os.Exit(1)
	}
}

// image is one tag to create.
type image struct {
	repo, tag string
	kind      string   // "list", "index", "single"
	platforms []string // architectures
	own       int      // own layers per platform image
	base      string   // family in bases
	alias     bool     // also tag "latest"
	oci       bool     // OCI media types, else Docker schema 2
}

func plan() []image {
	var out []image
	for i := range 4 {
		out = append(out, image{repo: fmt.Sprintf("bench/list-%d", i), tag: "v1", kind: "list",
			platforms: []string{"amd64", "arm64"}, own: 3, base: []string{"debian", "alpine"}[i/2]})
	}
	for i := range 4 {
		out = append(out, image{repo: fmt.Sprintf("bench/index-%d", i), tag: "v1", kind: "index",
			platforms: []string{"amd64", "arm64", "ppc64le"}, own: 3, oci: true, base: []string{"debian", "alpine"}[i/2]})
	}
	// Singles: debian 0-2, alpine 3-6, distroless 7-9, ubuntu 10-11.
	family := []string{"debian", "debian", "debian", "alpine", "alpine", "alpine", "alpine", "distroless", "distroless", "distroless", "ubuntu", "ubuntu"}
	for i := range 12 {
		own := 2
		if i == 7 || i == 8 {
			own = 1
		}
		out = append(out, image{repo: fmt.Sprintf("bench/app-%d", i), tag: "v1", kind: "single",
			platforms: []string{"amd64"}, own: own, alias: i < 5, oci: i%3 == 0, base: family[i]})
	}
	return out
}

func run(source, target, out string, seed uint64, regsyncParallel int) error {
	g := &gen{
		host:    source,
		seed:    seed,
		sizes:   rand.New(rand.NewPCG(seed, 1)),
		where:   map[string]string{},
		shared:  map[string]descriptor{},
		diffIDs: map[string]string{},
		client:  &http.Client{},
	}
	images := plan()
	own := 0
	for _, im := range images {
		own += im.own * len(im.platforms)
	}
	// Log-uniform sizes, scaled to the total.
	var sum float64
	raw := make([]float64, own)
	for i := range raw {
		raw[i] = math.Exp(math.Log(minLayer) + g.sizes.Float64()*(math.Log(maxLayer)-math.Log(minLayer)))
		sum += raw[i]
	}
	for _, r := range raw {
		g.layerSz = append(g.layerSz, max(minLayer, int64(r*ownTotal/sum)))
	}

	var refs []string
	for _, im := range images {
		if err := g.push(im); err != nil {
			return fmt.Errorf("%s:%s: %w", im.repo, im.tag, err)
		}
		refs = append(refs, im.repo+":"+im.tag)
		if im.alias {
			refs = append(refs, im.repo+":latest")
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	return errors.Join(writeInputs(out, source, target, refs, regsyncParallel), g.report())
}

func (g *gen) report() error {
	fmt.Printf("generated %d blobs, %.1f MB\n", g.nblobs, float64(g.nbytes)/(1<<20))
	return nil
}

// push creates one tag (and its alias).
func (g *gen) push(im image) error {
	var children []descriptor
	oci := im.oci
	for _, arch := range im.platforms {
		var layers []descriptor
		for i, size := range bases[im.base][arch] {
			d, err := g.sharedBlob(im.repo, fmt.Sprintf("%s-%s-%d", im.base, arch, i), size, layerType(oci))
			if err != nil {
				return err
			}
			layers = append(layers, d)
		}
		for range im.own {
			size := g.layerSz[0]
			g.layerSz = g.layerSz[1:]
			d, err := g.randomBlob(im.repo, size, layerType(oci))
			if err != nil {
				return err
			}
			layers = append(layers, d)
		}
		cfg, err := g.config(im, arch, layers, oci)
		if err != nil {
			return err
		}
		mt := dockerManifest
		if oci {
			mt = ociManifest
		}
		m, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mt, "config": cfg, "layers": layers})
		if err != nil {
			return err
		}
		if im.kind == "single" {
			if err := g.putManifest(im.repo, im.tag, mt, m); err != nil {
				return err
			}
			if im.alias {
				return g.putManifest(im.repo, "latest", mt, m)
			}
			return nil
		}
		d := digestOf(m)
		if err := g.putManifest(im.repo, d, mt, m); err != nil {
			return err
		}
		children = append(children, descriptor{MediaType: mt, Size: int64(len(m)), Digest: d, Platform: map[string]string{"os": "linux", "architecture": arch}})
	}
	mt := dockerList
	if oci {
		mt = ociIndex
	}
	idx, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mt, "manifests": children})
	if err != nil {
		return err
	}
	return g.putManifest(im.repo, im.tag, mt, idx)
}

func layerType(oci bool) string {
	if oci {
		return ociLayer
	}
	return dockerLayer
}

func (g *gen) config(im image, arch string, layers []descriptor, oci bool) (descriptor, error) {
	diffIDs := make([]string, len(layers))
	for i, l := range layers {
		diffIDs[i] = g.diffIDs[l.Digest]
	}
	b, err := json.Marshal(map[string]any{
		"architecture": arch,
		"os":           "linux",
		"config":       map[string]any{"Labels": map[string]string{"bench": im.repo + ":" + im.tag}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
	})
	if err != nil {
		return descriptor{}, err
	}
	mt := dockerConfig
	if oci {
		mt = ociConfig
	}
	d := descriptor{MediaType: mt, Size: int64(len(b)), Digest: digestOf(b)}
	return d, g.upload(im.repo, d.Digest, bytes.NewReader(b), d.Size)
}

// sharedBlob uploads a named shared layer once and mounts it elsewhere.
func (g *gen) sharedBlob(repo, key string, size int64, mt string) (descriptor, error) {
	if d, ok := g.shared[key]; ok {
		if err := g.mount(repo, d.Digest); err != nil {
			return descriptor{}, err
		}
		d.MediaType = mt
		return d, nil
	}
	d, err := g.randomBlob(repo, size, mt)
	if err != nil {
		return descriptor{}, err
	}
	g.shared[key] = d
	return d, nil
}

// randomBlob uploads a layer of about size bytes into repo: a gzip stream
// (stored blocks: the payload is random, compressing it would only burn
// CPU) of a tar holding one file of seeded random bytes. Real gzip and tar,
// so that tools which sniff layers (skopeo) keep them as they are.
func (g *gen) randomBlob(repo string, size int64, mt string) (descriptor, error) {
	var key [32]byte
	binaryPut(key[:8], g.seed)
	binaryPut(key[8:16], g.next)
	g.next++
	payload := max(size-2048, 1)
	// Pass one: the digests and the size (they go in the PUT URL and the
	// manifest); pass two: the upload. Generating is far cheaper than the
	// registry's write.
	h, diff := sha256.New(), sha256.New()
	n, err := io.Copy(h, layerStream(key, payload, diff))
	if err != nil {
		return descriptor{}, err
	}
	d := "sha256:" + hex.EncodeToString(h.Sum(nil))
	g.diffIDs[d] = "sha256:" + hex.EncodeToString(diff.Sum(nil))
	if err := g.upload(repo, d, layerStream(key, payload, io.Discard), n); err != nil {
		return descriptor{}, err
	}
	return descriptor{MediaType: mt, Size: n, Digest: d}, nil
}

// layerStream is gzip(tar(one file of n random bytes)); the tar bytes also
// go to diff.
func layerStream(key [32]byte, n int64, diff io.Writer) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		zw, _ := gzip.NewWriterLevel(pw, gzip.NoCompression)
		tw := tar.NewWriter(io.MultiWriter(zw, diff))
		err := tw.WriteHeader(&tar.Header{Name: "data.bin", Mode: 0o644, Size: n, Typeflag: tar.TypeReg})
		if err == nil {
			_, err = io.CopyN(tw, rand.NewChaCha8(key), n)
		}
		if err == nil {
			err = tw.Close()
		}
		if err == nil {
			err = zw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr
}

func binaryPut(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (8 * i))
	}
}

func digestOf(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func (g *gen) url(repo, rest string) string {
	return "http://" + g.host + "/v2/" + repo + rest
}

func (g *gen) do(req *http.Request, want int) (*http.Response, error) {
	resp, err := g.client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: %s: %s", req.Method, req.URL, resp.Status, b)
	}
	return resp, nil
}

// upload is POST + one PUT with the body.
func (g *gen) upload(repo, digest string, body io.Reader, size int64) error {
	if _, ok := g.where[digest]; ok {
		return g.mount(repo, digest)
	}
	req, _ := http.NewRequest(http.MethodPost, g.url(repo, "/blobs/uploads/"), nil)
	resp, err := g.do(req, http.StatusAccepted)
	if err != nil {
		return err
	}
	resp.Body.Close()
	loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil {
		return err
	}
	q := loc.Query()
	q.Set("digest", digest)
	loc.RawQuery = q.Encode()
	req, _ = http.NewRequest(http.MethodPut, loc.String(), body)
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	if resp, err = g.do(req, http.StatusCreated); err != nil {
		return err
	}
	resp.Body.Close()
	g.where[digest] = repo
	g.nblobs++
	g.nbytes += size
	return nil
}

func (g *gen) mount(repo, digest string) error {
	from := g.where[digest]
	if from == repo {
		return nil
	}
	req, _ := http.NewRequest(http.MethodPost, g.url(repo, "/blobs/uploads/?mount="+digest+"&from="+from), nil)
	resp, err := g.do(req, http.StatusCreated)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

func (g *gen) putManifest(repo, ref, mt string, body []byte) error {
	req, _ := http.NewRequest(http.MethodPut, g.url(repo, "/manifests/"+ref), bytes.NewReader(body))
	req.Header.Set("Content-Type", mt)
	resp, err := g.do(req, http.StatusCreated)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// writeInputs writes each tool's description of the same copy A -> B.
func writeInputs(dir, source, target string, refs []string, regsyncParallel int) error {
	var list, regsync, skopeo strings.Builder
	for _, r := range refs {
		fmt.Fprintf(&list, "%s/%s\n", source, r)
	}
	detour := fmt.Sprintf("presets: []\nescapePrefix: \"\"\nmirrors:\n  - from: %s\n    to: %s\n", source, target)

	fmt.Fprintf(&regsync, "version: 1\ncreds:\n  - registry: %s\n    tls: disabled\n  - registry: %s\n    tls: disabled\n", source, target)
	fmt.Fprintf(&regsync, "defaults:\n  parallel: %d\nsync:\n", regsyncParallel)
	for _, r := range refs {
		fmt.Fprintf(&regsync, "  - source: %s/%s\n    target: %s/%s\n    type: image\n", source, r, target, r)
	}

	tags := map[string][]string{}
	for _, r := range refs {
		repo, tag, _ := strings.Cut(r, ":")
		tags[repo] = append(tags[repo], tag)
	}
	repos := make([]string, 0, len(tags))
	for r := range tags {
		repos = append(repos, r)
	}
	sort.Strings(repos)
	fmt.Fprintf(&skopeo, "%s:\n  tls-verify: false\n  images:\n", source)
	for _, r := range repos {
		fmt.Fprintf(&skopeo, "    %s: [%s]\n", r, strings.Join(tags[r], ", "))
	}
	return errors.Join(
		os.WriteFile(filepath.Join(dir, "images.txt"), []byte(list.String()), 0o644),
		os.WriteFile(filepath.Join(dir, "detour.yaml"), []byte(detour), 0o644),
		os.WriteFile(filepath.Join(dir, "regsync.yml"), []byte(regsync.String()), 0o644),
		os.WriteFile(filepath.Join(dir, "skopeo.yml"), []byte(skopeo.String()), 0o644),
	)
}
