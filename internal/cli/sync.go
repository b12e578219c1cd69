package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/term"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/detourhq/detour/internal/imagesync"
)

// maxSyncParallel caps --parallel: beyond it a registry sees a flood, not
// a faster copy.
const maxSyncParallel = 64

// statusRefresh is how often the live status lines are redrawn.
const statusRefresh = 200 * time.Millisecond

// runSync copies every listed image to the mirror the rules give it.
//
// Output: one line per image on stdout as it finishes (or, with --output
// json, one JSON object), then a summary table; on a terminal, live status
// lines on stderr while images copy, else a plain line on stderr when an
// image starts to copy and per retry. Exit status 1 when any image failed, each named on stderr.
func runSync(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "sync", "[--config F] (--images FILE|- | --from-cluster [--kubeconfig F]) [--parallel N] [--platform OS/ARCH[/VARIANT]] [--dry-run] [--output text|json]")
	cfgPath := configFlag(fs, env)
	imagesFile := fs.String("images", "", "images list: one reference per line, # comments; - for stdin")
	fromCluster := fs.Bool("from-cluster", false, "read the images from the detour.dev/original-images annotations of the cluster's Pods")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig for --from-cluster (default: KUBECONFIG, ~/.kube/config, or in-cluster)")
	parallel := fs.Int("parallel", imagesync.DefaultParallel, "images copied at once, and blob transfers in flight")
	platform := fs.String("platform", "", "copy only this platform of multi-platform images (the target digest then differs)")
	dryRun := fs.Bool("dry-run", false, "print the plan (source, target, present or not) and copy nothing")
	output := fs.String("output", "text", "text or json (one object per image on stdout)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 0:
		return usageError("unexpected argument %q: list images in a file given to --images", pos[0])
	case (*imagesFile == "") == !*fromCluster:
		return usageError("give exactly one of --images FILE (- for stdin) or --from-cluster")
	case *kubeconfig != "" && !*fromCluster:
		return usageError("--kubeconfig goes with --from-cluster")
	case *parallel < 1 || *parallel > maxSyncParallel:
		return usageError("--parallel must be between 1 and %d", maxSyncParallel)
	case *output != "text" && *output != "json":
		return usageError("--output must be text or json")
	}
	var plat *v1.Platform
	if *platform != "" {
		if plat, err = v1.ParsePlatform(*platform); err != nil || plat.OS == "" || plat.Architecture == "" {
			return usageError("--platform %q: want OS/ARCH[/VARIANT], e.g. linux/arm64", *platform)
		}
	}
	cfg, set, err := loadRules(*cfgPath)
	if err != nil {
		return err
	}

	var entries []imagesync.Entry
	if *fromCluster {
		entries, err = clusterEntries(ctx, env, *kubeconfig)
	} else {
		entries, err = readImagesList(env, *imagesFile)
	}
	if err != nil {
		return err
	}
	jobs := imagesync.Plan(set, entries)

	r := newSyncReporter(env, jobs, *output == "json", *dryRun)
	s := imagesync.New(imagesync.Options{
		Insecure: cfg.InsecureRegistries,
		Parallel: *parallel,
		Platform: plat,
		DryRun:   *dryRun,
		Events:   r.event,
	})
	start := time.Now()
	r.start()
	results := s.Run(ctx, jobs)
	s.Close()
	r.stop()
	return r.finish(results, time.Since(start))
}

// readImagesList parses the list; every bad line is reported as
// FILE:LINE and nothing runs.
func readImagesList(env *Env, file string) ([]imagesync.Entry, error) {
	var in io.Reader
	label := file
	if file == "-" {
		in, label = env.Stdin, "<stdin>"
	} else {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("reading the images list: %w", err)
		}
		defer f.Close()
		in = f
	}
	entries, err := imagesync.ParseList(in)
	if err == nil {
		return entries, nil
	}
	var lines []string
	for _, e := range syncUnjoin(err) {
		var le *imagesync.LineError
		if errors.As(e, &le) {
			lines = append(lines, fmt.Sprintf("%s:%d: %q: %v", label, le.Line, le.Text, le.Err))
		} else {
			lines = append(lines, fmt.Sprintf("%s: %v", label, e))
		}
	}
	lines = append(lines, "nothing copied: fix the images list first")
	return nil, errors.New(strings.Join(lines, "\n"))
}

func syncUnjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// clusterEntries reads the images from the cluster's Pods.
func clusterEntries(ctx context.Context, env *Env, kubeconfig string) ([]imagesync.Entry, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	entries, warnings, err := imagesync.ClusterImages(ctx, rc)
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		fmt.Fprintf(env.Stderr, "detour sync: warning: %v\n", w)
	}
	if len(entries) == 0 {
		fmt.Fprintf(env.Stderr, "detour sync: no Pod in the cluster carries %s: nothing to copy\n", imagesync.OriginalImagesAnnotation)
	}
	return entries, nil
}

// syncReporter turns events into output. On a terminal it keeps a block of
// live status lines at the bottom of stderr, erased and redrawn around
// every line printed.
type syncReporter struct {
	env    *Env
	jobs   []imagesync.Job
	json   bool
	dryRun bool
	tty    *os.File // stderr when it is a terminal

	mu      sync.Mutex
	running map[int]*liveJob
	drawn   int // status lines currently on screen
	quit    chan struct{}
	done    chan struct{}
}

type liveJob struct {
	started     time.Time
	bytes       int64
	blobs, of   int
	lastRetried string
}

func newSyncReporter(env *Env, jobs []imagesync.Job, asJSON, dryRun bool) *syncReporter {
	r := &syncReporter{env: env, jobs: jobs, json: asJSON, dryRun: dryRun, running: map[int]*liveJob{}}
	if f, ok := env.Stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		r.tty = f
	}
	return r
}

func (r *syncReporter) start() {
	if r.tty == nil {
		return
	}
	r.quit, r.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(r.done)
		t := time.NewTicker(statusRefresh)
		defer t.Stop()
		for {
			select {
			case <-r.quit:
				return
			case <-t.C:
				r.mu.Lock()
				r.redraw()
				r.mu.Unlock()
			}
		}
	}()
}

func (r *syncReporter) stop() {
	if r.tty == nil {
		return
	}
	close(r.quit)
	<-r.done
	r.mu.Lock()
	r.erase()
	r.mu.Unlock()
}

func (r *syncReporter) event(e imagesync.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch e.Kind {
	case imagesync.Copying:
		r.running[e.Index] = &liveJob{started: time.Now()}
		if r.tty == nil {
			fmt.Fprintf(r.env.Stderr, "copying %s -> %s\n", e.Job.Source, e.Job.Target)
		}
	case imagesync.Progress:
		if j := r.running[e.Index]; j != nil {
			j.bytes, j.blobs, j.of = e.Bytes, e.BlobsDone, e.BlobsTotal
		}
	case imagesync.Retrying:
		msg := fmt.Sprintf("retrying %s in %s: %v", e.Job.Source, e.Wait.Round(time.Millisecond), e.Err)
		if r.tty == nil {
			fmt.Fprintln(r.env.Stderr, msg)
		} else if j := r.running[e.Index]; j != nil {
			j.lastRetried = fmt.Sprintf("retry in %s", e.Wait.Round(100*time.Millisecond))
		}
	case imagesync.Done:
		delete(r.running, e.Index)
		r.erase()
		r.printResult(e.Result)
		r.redraw()
	}
}

// erase removes the status lines (cursor up, clear to the end).
func (r *syncReporter) erase() {
	if r.tty == nil || r.drawn == 0 {
		return
	}
	fmt.Fprintf(r.tty, "\x1b[%dF\x1b[J", r.drawn)
	r.drawn = 0
}

// redraw replaces the status lines with the current ones.
func (r *syncReporter) redraw() {
	if r.tty == nil {
		return
	}
	r.erase()
	width := 100
	if w, _, err := term.GetSize(int(r.tty.Fd())); err == nil && w > 20 {
		width = w
	}
	idx := make([]int, 0, len(r.running))
	for i := range r.running {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	var b strings.Builder
	for _, i := range idx {
		j := r.running[i]
		line := fmt.Sprintf("  %s  %s", r.jobs[i].Source, syncBytes(j.bytes))
		if j.of > 0 {
			line += fmt.Sprintf("  %d/%d blobs", j.blobs, j.of)
		}
		line += "  " + time.Since(j.started).Round(time.Second).String()
		if j.lastRetried != "" {
			line += "  (" + j.lastRetried + ")"
		}
		if len(line) > width-1 {
			line = line[:width-2] + "…"
		}
		b.WriteString(line + "\n")
	}
	fmt.Fprint(r.tty, b.String())
	r.drawn = len(idx)
}

// syncRecord is the JSON form of one result.
type syncRecord struct {
	Line         int                 `json:"line,omitempty"`
	Source       string              `json:"source"`
	Target       string              `json:"target,omitempty"`
	Status       imagesync.Status    `json:"status"`
	SourceDigest string              `json:"sourceDigest,omitempty"`
	TargetDigest string              `json:"targetDigest,omitempty"`
	MediaType    string              `json:"mediaType,omitempty"`
	Narrowed     bool                `json:"narrowed,omitempty"`
	Blobs        imagesync.BlobStats `json:"blobs"`
	Manifests    int                 `json:"manifests"`
	Bytes        int64               `json:"bytes"`
	Seconds      float64             `json:"seconds"`
	Note         string              `json:"note,omitempty"`
	Error        string              `json:"error,omitempty"`
}

func (r *syncReporter) printResult(res *imagesync.Result) {
	if r.json {
		rec := syncRecord{
			Line: res.Line, Source: res.Source, Target: res.Target, Status: res.Status,
			SourceDigest: res.SourceDigest, TargetDigest: res.TargetDigest, MediaType: res.MediaType,
			Narrowed: res.Narrowed, Blobs: res.Blobs, Manifests: res.Manifests, Bytes: res.Bytes,
			Seconds: res.Duration.Seconds(), Note: res.Note,
		}
		if res.Err != nil {
			rec.Error = res.Err.Error()
		}
		b, _ := json.Marshal(rec)
		fmt.Fprintf(r.env.Stdout, "%s\n", b)
		return
	}
	fmt.Fprintln(r.env.Stdout, syncResultLine(res))
}

// resultLine is the text form of one result.
func syncResultLine(res *imagesync.Result) string {
	status := string(res.Status)
	if res.Status == imagesync.Planned {
		status = "to copy"
	}
	switch res.Status {
	case imagesync.Skipped:
		return fmt.Sprintf("%-8s %s: %s", status, res.Source, res.Note)
	case imagesync.Failed:
		return fmt.Sprintf("%-8s %s -> %s: %v", status, res.Source, res.Target, res.Err)
	}
	s := fmt.Sprintf("%-8s %s -> %s %s", status, res.Source, res.Target, syncShortDigest(res.TargetDigest))
	if res.Status == imagesync.Copied {
		n := res.Blobs.Uploaded + res.Blobs.Mounted + res.Blobs.Present
		s += fmt.Sprintf(" (%s, %d blobs: %d uploaded, %d mounted, %d present; %s)", syncBytes(res.Bytes), n,
			res.Blobs.Uploaded, res.Blobs.Mounted, res.Blobs.Present, res.Duration.Round(time.Millisecond))
	}
	if res.Note != "" {
		s += "; " + res.Note
	}
	return s
}

// finish prints the summary table and names the failures.
func (r *syncReporter) finish(results []imagesync.Result, took time.Duration) error {
	var copied, present, skipped, planned int
	var bytes int64
	var failed []string
	for i := range results {
		res := &results[i]
		bytes += res.Bytes
		switch res.Status {
		case imagesync.Copied:
			copied++
		case imagesync.Present:
			present++
		case imagesync.Skipped:
			skipped++
		case imagesync.Planned:
			planned++
		case imagesync.Failed:
			failed = append(failed, fmt.Sprintf("%s -> %s: %v", res.Source, res.Target, res.Err))
		}
	}
	out := r.env.Stdout
	if r.json {
		out = r.env.Stderr
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if r.dryRun {
		fmt.Fprintln(tw, "TO COPY\tPRESENT\tSKIPPED\tFAILED\tTIME")
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%s\n", planned, present, skipped, len(failed), took.Round(time.Millisecond))
	} else {
		fmt.Fprintln(tw, "COPIED\tPRESENT\tSKIPPED\tFAILED\tBYTES\tTIME")
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%s\t%s\n", copied, present, skipped, len(failed), syncBytes(bytes), took.Round(time.Millisecond))
	}
	tw.Flush()
	if len(failed) == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d images failed:\n%s", len(failed), len(results), strings.Join(failed, "\n"))
}

func syncShortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

func syncBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
