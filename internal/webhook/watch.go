package webhook

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watching files. Both the config file and the certificate are read from
// files that Kubernetes mounts from a ConfigMap or Secret. The kubelet
// updates such a volume by writing a new timestamped directory and swapping
// the `..data` symlink to it, so the file's own inode never changes and a
// watch on the file itself sees nothing. detour watches the directory that
// holds the file instead, and polls as well, for file systems without
// inotify and for events lost in a burst.
const (
	// ConfigPollInterval is how often the config file is read even without an
	// event. SPEC §4 promises a change applies within 5 s; a 2 s poll keeps
	// that even when no event arrives.
	ConfigPollInterval = 2 * time.Second
	// CertPollInterval is how often the certificate files are read without an
	// event. The kubelet takes up to a minute or so to update a Secret volume,
	// and a rotated certificate overlaps the old one by far more.
	CertPollInterval = 10 * time.Second
	// settleDelay is how long after the last event in a burst a file is read:
	// an editor or `kubectl cp` writes in several steps, and the kubelet's
	// symlink swap is several renames.
	settleDelay = 100 * time.Millisecond
)

// watching says how watchFiles notices changes.
type watching struct {
	// poll is the interval of reads without an event.
	poll time.Duration
	// noEvents turns the fsnotify watch off, leaving polling alone (tests).
	noEvents bool
	// started, if set, is called once the watch is in place (tests).
	started func()
}

// watchFiles calls reload whenever a file in the directories of paths may
// have changed, and every poll interval, until ctx is done. reload must be
// cheap when nothing changed. An error setting up the watch is logged and
// leaves polling alone to notice changes.
func watchFiles(ctx context.Context, log *slog.Logger, w watching, reload func(), paths ...string) {
	var events <-chan fsnotify.Event
	var errs <-chan error
	if !w.noEvents {
		var closeWatch func()
		events, errs, closeWatch = dirWatch(log, paths)
		defer closeWatch()
	}
	if w.started != nil {
		w.started()
	}

	ticker := time.NewTicker(w.poll)
	defer ticker.Stop()
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	defer settle.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			reload()
		case <-settle.C:
			reload()
		case _, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			settle.Reset(settleDelay)
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			log.Warn("watching files; polling still runs", slog.Any("error", err))
		}
	}
}

// dirWatch starts an fsnotify watch on the directories holding paths. On
// failure it returns nil channels, which block forever.
func dirWatch(log *slog.Logger, paths []string) (<-chan fsnotify.Event, <-chan error, func()) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		log.Warn("cannot watch files; polling only", slog.Any("error", err))
		return nil, nil, func() {}
	}
	seen := map[string]bool{}
	for _, p := range paths {
		dir := filepath.Dir(p)
		if seen[dir] {
			continue
		}
		seen[dir] = true
		if err := w.Add(dir); err != nil {
			log.Warn("cannot watch a directory; polling only", slog.String("dir", dir), slog.Any("error", fmt.Errorf("watching %s: %w", dir, err)))
		}
	}
	return w.Events, w.Errors, func() { _ = w.Close() }
}
