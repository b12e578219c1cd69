package imagesync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
)

// DefaultParallel is the default number of images copied at once, and of
// blob transfers in flight. On loopback (BENCHMARKS-sync.md) 2 to 16 copy
// equally fast: the target registry's CPU is the limit; 4 keeps the
// connections a remote registry sees modest.
const DefaultParallel = 4

// maxManifestBytes is the largest manifest read, distribution's own limit.
const maxManifestBytes = 4 << 20

// checkParallel bounds the jobs checking the target at once. A check is two
// HEADs, latency rather than work: more of them in flight make a resync of
// many images against a distant registry take a few round trips instead of
// one per image. --parallel still bounds the copies.
const checkParallel = 16

// progressStep is how many bytes pass between two Progress events of an
// image: often enough for a live line, rare enough to cost nothing.
const progressStep = 1 << 20

// Options configures a Syncer. The zero value copies whole images with
// DefaultParallel transfers, the credentials of authn.DefaultKeychain
// (which reads DOCKER_CONFIG or ~/.docker/config.json) and plain HTTP for
// loopback registries only.
type Options struct {
	// Keychain resolves credentials per registry; nil is
	// authn.DefaultKeychain.
	Keychain authn.Keychain
	// Transport is the base HTTP transport; nil is DefaultTransport().
	Transport http.RoundTripper
	// Insecure lists registry hosts ("host[:port]") reached over plain HTTP
	// besides loopback ones: the config's insecureRegistries.
	Insecure []string
	// Parallel bounds images copied at once and blob transfers in flight;
	// 0 is DefaultParallel.
	Parallel int
	// Platform, when set, narrows an index to its manifest for this
	// platform; the copy then has the child's digest, not the index's.
	Platform *v1.Platform
	// DryRun only looks: it resolves digests with HEAD and GET, never writes.
	DryRun bool
	// Retry is the retry policy; the zero value is DefaultRetry().
	Retry Retry
	// Logger receives debug lines about retries; nil discards them.
	Logger *slog.Logger
	// Events, when set, is called for every event, from many goroutines at
	// once; it must be quick.
	Events func(Event)
	// UserAgent is sent with every request (besides go-containerregistry's).
	UserAgent string
}

// Status is the outcome of one job.
type Status string

// The statuses of a Result.
const (
	// Copied: the image was copied to the target.
	Copied Status = "copied"
	// Present: the target already had the image with the same digest.
	Present Status = "present"
	// Skipped: the plan does not copy the image (Job.Skip says why).
	Skipped Status = "skipped"
	// Planned: a dry run found the image missing or different at the target.
	Planned Status = "planned"
	// Failed: Err says why.
	Failed Status = "failed"
)

// BlobStats counts the blobs of one image by what happened to them.
type BlobStats struct {
	Uploaded int // streamed from the source to the target
	Mounted  int // mounted from another repository of the target registry
	Present  int // already in the target repository (or uploaded by another image of this run)
}

// Result is the outcome of one Job.
type Result struct {
	Job
	Status Status
	// SourceDigest is the digest of the listed source image.
	SourceDigest string
	// TargetDigest is the digest the target has (or, for Planned, would have).
	TargetDigest string
	// MediaType is the media type of the copied manifest.
	MediaType string
	// Narrowed is true when Platform picked one manifest out of an index: the
	// target digest then differs from the source digest.
	Narrowed bool
	Blobs    BlobStats
	// Manifests counts the manifests pushed (an index and its children).
	Manifests int
	// Bytes counts the blob bytes uploaded.
	Bytes    int64
	Duration time.Duration
	// Note is a human remark: why an image is skipped, what a dry run found,
	// that a narrowed copy changed the digest.
	Note string
	Err  error
}

// EventKind says what an Event reports.
type EventKind int

// Event kinds, in the order they happen for one image.
const (
	// Started: a job's check began (skipped jobs get Done only).
	Started EventKind = iota
	// Copying: the target lacks the image (or has another digest): bytes
	// will move. A present image never gets this event.
	Copying
	// Progress: bytes moved; Bytes, BlobsDone and BlobsTotal are the
	// image's running totals.
	Progress
	// Retrying: an operation failed and is tried again after Wait; Err
	// says what failed.
	Retrying
	// Done: the job finished; Result is set.
	Done
)

// Event is a step of a run, for progress displays.
type Event struct {
	Kind  EventKind
	Index int // the job's position in the slice given to Run
	Job   Job

	Bytes      int64
	BlobsDone  int
	BlobsTotal int

	Err  error
	Wait time.Duration

	Result *Result
}

// Syncer copies images between registries. It remembers, for the whole
// run, which blobs it put into which repository of each target registry,
// so a blob shared by several images is uploaded once and mounted
// elsewhere. Safe for concurrent use; use one Syncer per run.
type Syncer struct {
	opts         Options
	ownTransport *http.Transport // nil when the caller gave one
	parallel     int
	client       *client
	sem          chan struct{} // blob transfers in flight
	log          *slog.Logger
	retry        Retry

	mu        sync.Mutex
	repoBlobs map[repoBlob]*flight // blob already (being) put in a repository
	hostBlobs map[hostBlob]*flight // first transfer of a blob into a registry
}

type repoBlob struct{ host, repo, digest string }
type hostBlob struct{ host, digest string }

// flight is one blob's way into one repository; done closes when err and
// how are final.
type flight struct {
	done chan struct{}
	repo string
	err  error
}

// New returns a Syncer.
func New(opts Options) *Syncer {
	if opts.Keychain == nil {
		opts.Keychain = authn.DefaultKeychain
	}
	var own *http.Transport
	if opts.Transport == nil {
		own = DefaultTransport()
		opts.Transport = own
	}
	if opts.Parallel <= 0 {
		opts.Parallel = DefaultParallel
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	agent := "detour-sync"
	if opts.UserAgent != "" {
		agent = opts.UserAgent
	}
	return &Syncer{
		opts:         opts,
		ownTransport: own,
		parallel:     opts.Parallel,
		client:       newClient(opts.Transport, opts.Keychain, opts.Insecure, agent),
		sem:          make(chan struct{}, opts.Parallel),
		log:          log,
		retry:        opts.Retry.orDefault(),
		repoBlobs:    map[repoBlob]*flight{},
		hostBlobs:    map[hostBlob]*flight{},
	}
}

// Close releases the idle connections of the Syncer's own transport (not of
// a caller's Options.Transport). The Syncer is not to be used afterwards.
func (s *Syncer) Close() {
	if s.ownTransport != nil {
		s.ownTransport.CloseIdleConnections()
	}
}

// Run carries out jobs and returns one Result per job, in order. Skipped
// jobs are reported without any request. Up to checkParallel jobs at once
// check whether the target has their image; those it lacks are copied,
// Parallel at a time.
func (s *Syncer) Run(ctx context.Context, jobs []Job) []Result {
	results := make([]Result, len(jobs))
	checks := make(chan int)
	copies := make(chan *task)
	var checkers, copiers sync.WaitGroup
	for range min(checkParallel, len(jobs)) {
		checkers.Go(func() {
			for i := range checks {
				t := s.check(ctx, i, jobs[i])
				if t.copy {
					copies <- t
				} else {
					results[i] = s.finish(t)
				}
			}
		})
	}
	for range min(s.parallel, len(jobs)) {
		copiers.Go(func() {
			for t := range copies {
				if err := s.copy(ctx, t); err != nil {
					t.res.Status, t.res.Err = Failed, err
				}
				results[t.st.index] = s.finish(t)
			}
		})
	}
	for i, j := range jobs {
		if j.Skip != "" {
			results[i] = Result{Job: j, Status: Skipped, Note: j.Skip}
			s.emit(Event{Kind: Done, Index: i, Job: j, Result: &results[i]})
			continue
		}
		checks <- i
	}
	close(checks)
	checkers.Wait()
	close(copies)
	copiers.Wait()
	return results
}

func (s *Syncer) emit(e Event) {
	if s.opts.Events != nil {
		s.opts.Events(e)
	}
}

// jobState is one running job's counters.
type jobState struct {
	s     *Syncer
	index int
	job   Job

	bytes      atomic.Int64 // live, including transfers that may still fail
	done       atomic.Int64 // bytes of finished uploads
	blobsDone  atomic.Int32
	blobsTotal atomic.Int32
	uploaded   atomic.Int32
	mounted    atomic.Int32
	present    atomic.Int32
	manifests  atomic.Int32
}

func (st *jobState) progress() {
	st.s.emit(Event{Kind: Progress, Index: st.index, Job: st.job, Bytes: st.bytes.Load(),
		BlobsDone: int(st.blobsDone.Load()), BlobsTotal: int(st.blobsTotal.Load())})
}

func (st *jobState) notifyRetry(op string) func(error, time.Duration) {
	return func(err error, wait time.Duration) {
		st.s.log.Debug("retrying", "image", st.job.Source, "op", op, "err", err, "wait", wait)
		st.s.emit(Event{Kind: Retrying, Index: st.index, Job: st.job, Err: fmt.Errorf("%s: %w", op, err), Wait: wait})
	}
}

// task is one job between its check and its end.
type task struct {
	st    *jobState
	res   *Result
	start time.Time
	copy  bool // the check found the target lacking the image

	srcR, dstR *repoConn
	want       string    // source digest
	top        *manifest // the manifest to push, when already fetched
	pushID     string    // tag or digest to push under
}

// finish completes a task's Result and reports it.
func (s *Syncer) finish(t *task) Result {
	st, res := t.st, t.res
	res.Blobs = BlobStats{Uploaded: int(st.uploaded.Load()), Mounted: int(st.mounted.Load()), Present: int(st.present.Load())}
	res.Manifests = int(st.manifests.Load())
	res.Bytes = st.done.Load()
	res.Duration = time.Since(t.start)
	s.emit(Event{Kind: Done, Index: st.index, Job: st.job, Result: res})
	return *res
}

// ref is a parsed image reference: the tag and digest exactly as written.
type ref struct {
	repo   name.Repository
	tag    string // "" when none was written
	digest string // "" when none was written
}

// id is what to fetch: the digest when there is one, else the tag, else
// "latest" (what kubelet pulls for a bare name).
func (r ref) id() string {
	switch {
	case r.digest != "":
		return r.digest
	case r.tag != "":
		return r.tag
	}
	return "latest"
}

// pushID is what to push to: the tag when there is one (a digest-pinned
// Pod still finds the manifest by digest), else the digest, else "latest".
func (r ref) pushID() string {
	switch {
	case r.tag != "":
		return r.tag
	case r.digest != "":
		return r.digest
	}
	return "latest"
}

func parseRef(s string) (ref, error) {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return ref{}, fmt.Errorf("parsing reference %q: %w", s, err)
	}
	var r ref
	if t, ok := named.(reference.Tagged); ok {
		r.tag = t.Tag()
	}
	if d, ok := named.(reference.Digested); ok {
		r.digest = d.Digest().String()
	}
	r.repo, err = name.NewRepository(named.Name())
	if err != nil {
		return ref{}, fmt.Errorf("parsing reference %q: %w", s, err)
	}
	return r, nil
}

// manifest is one manifest as the source stored it.
type manifest struct {
	body      []byte
	mediaType types.MediaType
	digest    string
}

// check resolves a job's source digest and looks at the target: one HEAD
// on each side, at once (none on the source for a digest reference). It
// sets t.copy when the image is to be copied.
func (s *Syncer) check(ctx context.Context, i int, job Job) *task {
	t := &task{st: &jobState{s: s, index: i, job: job}, res: &Result{Job: job}, start: time.Now()}
	s.emit(Event{Kind: Started, Index: i, Job: job})
	if err := s.checkImage(ctx, t); err != nil {
		t.copy = false
		t.res.Status, t.res.Err = Failed, err
	}
	return t
}

func (s *Syncer) checkImage(ctx context.Context, t *task) error {
	st, res, job := t.st, t.res, t.st.job
	src, err := parseRef(job.Source)
	if err != nil {
		return err
	}
	dst, err := parseRef(job.Target)
	if err != nil {
		return err
	}
	if t.srcR, err = s.client.repo(ctx, src.repo, false); err != nil {
		return fmt.Errorf("source: %w", err)
	}
	if t.dstR, err = s.client.repo(ctx, dst.repo, !s.opts.DryRun); err != nil {
		return fmt.Errorf("target: %w", err)
	}
	t.pushID = dst.pushID()

	// Without --platform the target is looked at while the source is.
	var (
		have     string
		found    bool
		checkErr error
		checked  = make(chan struct{})
	)
	headTarget := func() {
		defer close(checked)
		have, found, checkErr = s.head(ctx, st, t.dstR, t.pushID)
	}
	if s.opts.Platform == nil {
		go headTarget()
	}
	t.want = src.digest
	if t.want == "" {
		d, ok, err := s.head(ctx, st, t.srcR, src.id())
		if err == nil && !ok {
			err = errors.New("manifest not found")
		}
		if err != nil {
			if s.opts.Platform == nil {
				<-checked
			}
			return fmt.Errorf("source %s: %w", job.Source, err)
		}
		t.want = d
	}
	res.SourceDigest = t.want

	wantTarget := t.want
	if s.opts.Platform != nil {
		m, err := s.getManifest(ctx, st, t.srcR, t.want)
		if err != nil {
			return fmt.Errorf("source %s: %w", job.Source, err)
		}
		if t.top, err = s.narrow(ctx, st, t.srcR, m); err != nil {
			return fmt.Errorf("source %s: %w", job.Source, err)
		}
		if t.top.digest != t.want {
			res.Narrowed = true
			res.Note = fmt.Sprintf("only %s copied: the target digest %s differs from the source's %s", s.opts.Platform, t.top.digest, t.want)
			if dst.tag == "" {
				t.pushID = t.top.digest
			}
		} else if !m.mediaType.IsIndex() {
			res.Note = "a single image, copied whole (--platform narrows indexes)"
		}
		wantTarget = t.top.digest
		headTarget()
	}
	<-checked
	if checkErr != nil {
		return fmt.Errorf("target %s: %w", job.Target, checkErr)
	}
	if found && have == wantTarget {
		res.Status, res.TargetDigest = Present, have
		return nil
	}
	if s.opts.DryRun {
		res.Status, res.TargetDigest = Planned, wantTarget
		note := "missing at the target"
		if found {
			note = "the target has " + have + " instead"
		}
		res.Note = strings.TrimPrefix(res.Note+"; "+note, "; ")
		return nil
	}
	t.copy = true
	return nil
}

// copy copies a checked job's image: what its manifest refers to, then the
// manifest itself.
func (s *Syncer) copy(ctx context.Context, t *task) error {
	st, res, job := t.st, t.res, t.st.job
	s.emit(Event{Kind: Copying, Index: st.index, Job: job})
	top := t.top
	if top == nil {
		var err error
		if top, err = s.getManifest(ctx, st, t.srcR, t.want); err != nil {
			return fmt.Errorf("source %s: %w", job.Source, err)
		}
	}
	res.MediaType = string(top.mediaType)
	if err := s.copyChildren(ctx, st, t.srcR, t.dstR, top); err != nil {
		return err
	}
	if err := s.putManifest(ctx, st, t.dstR, t.pushID, top); err != nil {
		return fmt.Errorf("target %s: %w", job.Target, err)
	}
	res.Status, res.TargetDigest = Copied, top.digest
	return nil
}

// narrow picks the manifest for Options.Platform out of an index; other
// manifests are returned as they are.
func (s *Syncer) narrow(ctx context.Context, st *jobState, r *repoConn, m *manifest) (*manifest, error) {
	if !m.mediaType.IsIndex() {
		return m, nil
	}
	idx, err := v1.ParseIndexManifest(bytes.NewReader(m.body))
	if err != nil {
		return nil, fmt.Errorf("parsing index %s: %w", m.digest, err)
	}
	var have []string
	for _, d := range idx.Manifests {
		if d.Platform == nil {
			continue
		}
		if d.Platform.Satisfies(*s.opts.Platform) {
			return s.getManifest(ctx, st, r, d.Digest.String())
		}
		have = append(have, d.Platform.String())
	}
	return nil, fmt.Errorf("index %s has no manifest for %s (it has %s)", m.digest, s.opts.Platform, strings.Join(have, ", "))
}

// copyChildren copies what m refers to (child manifests of an index, the
// config and layers of an image) into the target, not m itself.
func (s *Syncer) copyChildren(ctx context.Context, st *jobState, srcR, dstR *repoConn, m *manifest) error {
	switch {
	case m.mediaType.IsIndex():
		idx, err := v1.ParseIndexManifest(bytes.NewReader(m.body))
		if err != nil {
			return fmt.Errorf("parsing index %s: %w", m.digest, err)
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(s.parallel)
		for _, d := range idx.Manifests {
			g.Go(func() error { return s.copyChild(gctx, st, srcR, dstR, d) })
		}
		return g.Wait()
	case m.mediaType.IsImage():
		im, err := v1.ParseManifest(bytes.NewReader(m.body))
		if err != nil {
			return fmt.Errorf("parsing manifest %s: %w", m.digest, err)
		}
		blobs := append([]v1.Descriptor{im.Config}, im.Layers...)
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(s.parallel)
		for _, d := range blobs {
			if !d.MediaType.IsDistributable() {
				continue // foreign layers live elsewhere; registries do not hold them
			}
			st.blobsTotal.Add(1)
			g.Go(func() error {
				if err := s.copyBlob(gctx, st, srcR, dstR, d); err != nil {
					return fmt.Errorf("blob %s of %s: %w", d.Digest, m.digest, err)
				}
				st.blobsDone.Add(1)
				st.progress()
				return nil
			})
		}
		return g.Wait()
	}
	return fmt.Errorf("manifest %s: media type %q is not copied (only Docker schema 2 and OCI images and indexes)", m.digest, m.mediaType)
}

// copyChild copies one manifest of an index, unless the target has it.
func (s *Syncer) copyChild(ctx context.Context, st *jobState, srcR, dstR *repoConn, d v1.Descriptor) error {
	dg := d.Digest.String()
	_, found, err := s.head(ctx, st, dstR, dg)
	if err != nil {
		return fmt.Errorf("target manifest %s: %w", dg, err)
	}
	if found {
		return nil
	}
	m, err := s.getManifest(ctx, st, srcR, dg)
	if err != nil {
		return fmt.Errorf("source manifest %s: %w", dg, err)
	}
	if err := s.copyChildren(ctx, st, srcR, dstR, m); err != nil {
		return err
	}
	return s.putManifest(ctx, st, dstR, dg, m)
}

// head asks for a manifest's digest with one HEAD; found is false on 404.
func (s *Syncer) head(ctx context.Context, st *jobState, r *repoConn, id string) (dg string, found bool, err error) {
	err = retry(ctx, s.retry, st.notifyRetry("HEAD manifest "+id), func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, r.prefix+"/manifests/"+id, nil)
		if err != nil {
			return err
		}
		for _, a := range manifestAccept {
			req.Header.Add("Accept", a)
		}
		resp, err := r.do(req, http.StatusOK, http.StatusNotFound)
		if err != nil {
			return err
		}
		drain(resp)
		found = resp.StatusCode == http.StatusOK
		dg = resp.Header.Get("Docker-Content-Digest")
		return nil
	})
	if err != nil || !found || dg != "" {
		return dg, found, err
	}
	// No digest header (not every registry sends one on HEAD): hash the body.
	m, err := s.getManifest(ctx, st, r, id)
	if err != nil {
		return "", false, err
	}
	return m.digest, true, nil
}

// getManifest fetches a manifest and checks its bytes against the digest
// asked for (or, by tag, against the registry's Docker-Content-Digest).
func (s *Syncer) getManifest(ctx context.Context, st *jobState, r *repoConn, id string) (*manifest, error) {
	var m *manifest
	err := retry(ctx, s.retry, st.notifyRetry("GET manifest "+id), func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.prefix+"/manifests/"+id, nil)
		if err != nil {
			return err
		}
		for _, a := range manifestAccept {
			req.Header.Add("Accept", a)
		}
		resp, err := r.do(req, http.StatusOK)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxManifestBytes+1))
		if err != nil {
			return fmt.Errorf("reading manifest %s: %w", id, err)
		}
		if len(body) > maxManifestBytes {
			return fmt.Errorf("manifest %s is larger than %d bytes", id, maxManifestBytes)
		}
		got := digest.FromBytes(body)
		want := id
		if _, err := digest.Parse(id); err != nil {
			want = resp.Header.Get("Docker-Content-Digest")
		} else if d := digest.Digest(id); d.Algorithm() != digest.Canonical {
			got = d.Algorithm().FromBytes(body)
		}
		if want != "" && got.String() != want {
			return fmt.Errorf("manifest %s: its content has digest %s", want, got)
		}
		m = &manifest{body: body, digest: got.String(), mediaType: mediaTypeOf(body, resp.Header.Get("Content-Type"))}
		return nil
	})
	return m, err
}

// mediaTypeOf prefers the manifest's own mediaType field over the
// Content-Type the registry answered with.
func mediaTypeOf(body []byte, contentType string) types.MediaType {
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
	}
	_ = json.Unmarshal(body, &probe)
	if probe.MediaType != "" {
		return probe.MediaType
	}
	ct, _, _ := strings.Cut(contentType, ";")
	return types.MediaType(strings.TrimSpace(ct))
}

// putManifest pushes m's exact bytes under id.
func (s *Syncer) putManifest(ctx context.Context, st *jobState, r *repoConn, id string, m *manifest) error {
	err := retry(ctx, s.retry, st.notifyRetry("PUT manifest "+id), func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, r.prefix+"/manifests/"+id, bytes.NewReader(m.body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", string(m.mediaType))
		resp, err := r.do(req, http.StatusCreated, http.StatusOK)
		if err != nil {
			return err
		}
		drain(resp)
		if got := resp.Header.Get("Docker-Content-Digest"); got != "" && got != m.digest {
			return fmt.Errorf("the registry stored manifest %s as %s", m.digest, got)
		}
		return nil
	})
	if err != nil {
		return err
	}
	st.manifests.Add(1)
	return nil
}

// copyBlob puts one blob into the target repository, at most once per run:
// a blob another image is already putting into the same repository is
// waited for; one already put into another repository of the same registry
// is mounted from there.
func (s *Syncer) copyBlob(ctx context.Context, st *jobState, srcR, dstR *repoConn, d v1.Descriptor) error {
	dg := d.Digest.String()
	key := repoBlob{dstR.host, dstR.repo, dg}
	s.mu.Lock()
	if f := s.repoBlobs[key]; f != nil {
		s.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if f.err != nil {
			return f.err
		}
		st.present.Add(1)
		return nil
	}
	f := &flight{done: make(chan struct{}), repo: dstR.repo}
	s.repoBlobs[key] = f
	hk := hostBlob{dstR.host, dg}
	first := s.hostBlobs[hk]
	if first == nil {
		s.hostBlobs[hk] = f
	}
	s.mu.Unlock()

	f.err = s.transferBlob(ctx, st, srcR, dstR, d, first)
	if f.err != nil {
		// Forget the failure, so that another image may try again.
		s.mu.Lock()
		delete(s.repoBlobs, key)
		if s.hostBlobs[hk] == f {
			delete(s.hostBlobs, hk)
		}
		s.mu.Unlock()
	}
	close(f.done)
	return f.err
}

func (s *Syncer) transferBlob(ctx context.Context, st *jobState, srcR, dstR *repoConn, d v1.Descriptor, first *flight) error {
	dg := d.Digest.String()
	session := ""
	from := ""
	if first != nil {
		select {
		case <-first.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if first.err == nil {
			from = first.repo
		}
	} else if srcR.host == dstR.host && srcR.repo != dstR.repo {
		from = srcR.repo
	}
	if from != "" {
		loc, err := s.mount(ctx, st, dstR, dg, from)
		if err != nil {
			return err
		}
		if loc == "" {
			st.mounted.Add(1)
			return nil
		}
		session = loc
	} else {
		found, err := s.blobExists(ctx, st, dstR, dg)
		if err != nil {
			return err
		}
		if found {
			st.present.Add(1)
			return nil
		}
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.sem }()
	// Every attempt streams the whole blob again: a new GET from the source
	// and a new upload session. Resuming a half-written session is not
	// worth its complexity (distribution 2.8 forgets a session's offset on a
	// broken connection anyway).
	return retry(ctx, s.retry, st.notifyRetry("copy blob "+dg), func() error {
		loc := session
		session = ""
		return s.uploadOnce(ctx, st, srcR, dstR, d, loc)
	})
}

// blobExists is one HEAD of a blob in the target repository.
func (s *Syncer) blobExists(ctx context.Context, st *jobState, r *repoConn, dg string) (bool, error) {
	var found bool
	err := retry(ctx, s.retry, st.notifyRetry("HEAD blob "+dg), func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, r.prefix+"/blobs/"+dg, nil)
		if err != nil {
			return err
		}
		resp, err := r.do(req, http.StatusOK, http.StatusNotFound)
		if err != nil {
			return err
		}
		drain(resp)
		found = resp.StatusCode == http.StatusOK
		return nil
	})
	return found, err
}

// mount asks the registry to link a blob from another repository. It
// returns "" when mounted, or the upload session the registry opened
// instead (202).
func (s *Syncer) mount(ctx context.Context, st *jobState, r *repoConn, dg, from string) (string, error) {
	var loc string
	err := retry(ctx, s.retry, st.notifyRetry("mount blob "+dg), func() error {
		u := r.prefix + "/blobs/uploads/?mount=" + dg + "&from=" + from
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
		if err != nil {
			return err
		}
		resp, err := r.do(req, http.StatusCreated, http.StatusAccepted)
		if err != nil {
			return err
		}
		drain(resp)
		if resp.StatusCode == http.StatusCreated {
			loc = ""
			return nil
		}
		loc, err = location(resp)
		return err
	})
	return loc, err
}

// startUpload opens an upload session and returns its URL.
func startUpload(ctx context.Context, r *repoConn) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.prefix+"/blobs/uploads/", nil)
	if err != nil {
		return "", err
	}
	resp, err := r.do(req, http.StatusAccepted)
	if err != nil {
		return "", err
	}
	drain(resp)
	return location(resp)
}

func location(resp *http.Response) (string, error) {
	loc := resp.Header.Get("Location")
	if loc == "" {
		return "", fmt.Errorf("%s %s: %d without a Location", resp.Request.Method, resp.Request.URL.Redacted(), resp.StatusCode)
	}
	u, err := resp.Request.URL.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("upload location %q: %w", loc, err)
	}
	return u.String(), nil
}

// uploadOnce streams one blob from the source straight into a monolithic
// PUT on the target: the bytes pass through once, unhashed here, because
// the target registry checks the digest before it accepts the blob.
func (s *Syncer) uploadOnce(ctx context.Context, st *jobState, srcR, dstR *repoConn, d v1.Descriptor, loc string) (err error) {
	dg := d.Digest.String()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srcR.prefix+"/blobs/"+dg, nil)
	if err != nil {
		return err
	}
	src, err := srcR.do(req, http.StatusOK)
	if err != nil {
		if loc != "" {
			cancelUpload(dstR, loc)
		}
		return fmt.Errorf("source: %w", err)
	}
	defer src.Body.Close()
	if src.ContentLength >= 0 && src.ContentLength != d.Size {
		if loc != "" {
			cancelUpload(dstR, loc)
		}
		return fmt.Errorf("source sent %d bytes for a blob of %d", src.ContentLength, d.Size)
	}
	if loc == "" {
		if loc, err = startUpload(ctx, dstR); err != nil {
			return fmt.Errorf("target: %w", err)
		}
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	body := &progressReader{r: src.Body, st: st}
	put, err := http.NewRequestWithContext(ctx, http.MethodPut, loc+sep+"digest="+dg, body)
	if err != nil {
		return err
	}
	put.ContentLength = d.Size
	if d.Size == 0 {
		put.Body = http.NoBody
	}
	put.Header.Set("Content-Type", "application/octet-stream")
	resp, err := dstR.do(put, http.StatusCreated)
	if err != nil {
		st.bytes.Add(-body.n)
		cancelUpload(dstR, loc)
		if body.err != nil && !errors.Is(err, body.err) {
			err = fmt.Errorf("%w (reading the source: %w)", err, body.err)
		}
		return fmt.Errorf("upload: %w", err)
	}
	drain(resp)
	st.uploaded.Add(1)
	st.done.Add(d.Size)
	return nil
}

// cancelUpload deletes a failed upload session, best effort: the registry
// purges abandoned sessions on its own eventually.
func cancelUpload(r *repoConn, loc string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, loc, nil)
	if err != nil {
		return
	}
	if resp, err := r.http.Do(req); err == nil {
		drain(resp)
	}
}

// progressReader counts the bytes of a transfer into its job's live total.
type progressReader struct {
	r   io.Reader
	st  *jobState
	n   int64
	err error // the source's read error, when the source failed
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		before := p.st.bytes.Load()
		after := p.st.bytes.Add(int64(n))
		p.n += int64(n)
		if before/progressStep != after/progressStep {
			p.st.progress()
		}
	}
	if err != nil && err != io.EOF {
		p.err = err
	}
	return n, err
}
