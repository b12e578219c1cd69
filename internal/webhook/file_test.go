package webhook

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/detourhq/detour/internal/config"
)

// mirrorConfig is a config sending Docker Hub to mirror.
func mirrorConfig(mirror string) []byte {
	return fmt.Appendf(nil, "presets: []\nmirrors:\n  - from: docker.io\n    to: %s\n", mirror)
}

// mirrorOf is where the store's config in use sends nginx.
func mirrorOf(s *Store) string {
	img := s.Load().Policy.Rules.Rewrite("nginx").Image
	return strings.TrimSuffix(img, "/library/nginx")
}

// kubeletVolume lays out dir as the kubelet lays out a ConfigMap volume:
// config.yaml -> ..data/config.yaml, ..data -> ..<version>, the file in there.
// Each update writes a new version directory and swaps ..data with a rename.
type kubeletVolume struct {
	dir     string
	version int
}

func (v *kubeletVolume) write(t *testing.T, data []byte) {
	t.Helper()
	v.version++
	ts := fmt.Sprintf("..2025_01_01_00_00_%02d.%d", v.version, v.version)
	if err := os.Mkdir(filepath.Join(v.dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v.dir, ts, "config.yaml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(ts, filepath.Join(v.dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(v.dir, "..data_tmp"), filepath.Join(v.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if v.version == 1 {
		if err := os.Symlink("..data/config.yaml", filepath.Join(v.dir, "config.yaml")); err != nil {
			t.Fatal(err)
		}
	} else if err := os.RemoveAll(filepath.Join(v.dir, fmt.Sprintf("..2025_01_01_00_00_%02d.%d", v.version-1, v.version-1))); err != nil {
		t.Fatal(err)
	}
}

func TestWatchFileFollowsAKubeletConfigMapVolume(t *testing.T) {
	t.Parallel()
	vol := &kubeletVolume{dir: t.TempDir()}
	vol.write(t, mirrorConfig("one.mirror.test"))
	path := filepath.Join(vol.dir, "config.yaml")

	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, nil)
	store := NewStore(StoreOptions{Metrics: m})
	if err := LoadFile(store, path); err != nil {
		t.Fatal(err)
	}
	// Events only: a poll that would notice the change is an hour away.
	startWatch(t, store, path, watching{poll: time.Hour})

	vol.write(t, mirrorConfig("two.mirror.test"))
	eventually(t, "on the second config", func() bool { return mirrorOf(store) == "two.mirror.test" })
	if g := store.Load().Generation; g != 2 {
		t.Errorf("generation %d, want 2", g)
	}

	// An invalid config is refused, counted, and the last good one stays.
	vol.write(t, append(mirrorConfig("three.mirror.test"), "notAKey: true\n"...))
	eventually(t, "refusing the invalid config", func() bool {
		return testutil.ToFloat64(m.reloads.WithLabelValues(reloadFailure)) == 1
	})
	if got := mirrorOf(store); got != "two.mirror.test" {
		t.Errorf("after an invalid config, mirror %q, want the last good two.mirror.test", got)
	}

	vol.write(t, mirrorConfig("four.mirror.test"))
	eventually(t, "on the fourth config", func() bool { return mirrorOf(store) == "four.mirror.test" })
	if g, gen := testutil.ToFloat64(m.generation), store.Load().Generation; g != 3 || gen != 3 {
		t.Errorf("generation metric %v, snapshot %d; want 3 (the refused config is no generation)", g, gen)
	}
	if got := testutil.ToFloat64(m.reloads.WithLabelValues(reloadFailure)); got != 1 {
		t.Errorf("failures counted %v, want 1: the invalid file is refused once, not at every poll", got)
	}
}

func TestWatchFileFollowsAnEditInPlace(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "detour.yaml")
	if err := os.WriteFile(path, mirrorConfig("one.mirror.test"), 0o644); err != nil {
		t.Fatal(err)
	}
	store := NewStore(StoreOptions{})
	if err := LoadFile(store, path); err != nil {
		t.Fatal(err)
	}
	startWatch(t, store, path, watching{poll: time.Hour})

	if err := os.WriteFile(path, mirrorConfig("two.mirror.test"), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "on the edited config", func() bool { return mirrorOf(store) == "two.mirror.test" })
}

func TestWatchFilePollsWithoutEvents(t *testing.T) {
	t.Parallel()
	vol := &kubeletVolume{dir: t.TempDir()}
	vol.write(t, mirrorConfig("one.mirror.test"))
	path := filepath.Join(vol.dir, "config.yaml")
	store := NewStore(StoreOptions{})
	if err := LoadFile(store, path); err != nil {
		t.Fatal(err)
	}
	startWatch(t, store, path, watching{poll: 20 * time.Millisecond, noEvents: true})

	vol.write(t, mirrorConfig("two.mirror.test"))
	eventually(t, "on the second config", func() bool { return mirrorOf(store) == "two.mirror.test" })
}

// startWatch runs watchFile until the test ends, and returns once the watch
// is in place.
func startWatch(t *testing.T, store *Store, path string, w watching) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	w.started = func() { close(started) }
	var wg sync.WaitGroup
	wg.Go(func() { watchFile(ctx, store, path, nil, w) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	<-started
}

func TestStoreApply(t *testing.T) {
	t.Parallel()
	store := NewStore(StoreOptions{})
	if store.Load() != nil {
		t.Fatal("a new store has a config")
	}
	err := store.Apply([]byte("mirrors:\n  - from: docker.io\n    to: \"not valid!\"\n"), "/etc/detour/config.yaml")
	var list config.ErrorList
	if !errors.As(err, &list) || !strings.HasPrefix(err.Error(), "/etc/detour/config.yaml:2: ") {
		t.Errorf("error %v, want FILE:LINE errors naming the file", err)
	}
	if store.Load() != nil {
		t.Error("an invalid first config was stored")
	}
	if err := store.Apply(mirrorConfig("one.mirror.test"), "c"); err != nil {
		t.Fatal(err)
	}
	if err := store.Apply(mirrorConfig("one.mirror.test"), "c"); !errors.Is(err, ErrUnchanged) {
		t.Errorf("applying the same bytes again: %v, want ErrUnchanged", err)
	}
	if g := store.Load().Generation; g != 1 {
		t.Errorf("generation %d, want 1", g)
	}
}
