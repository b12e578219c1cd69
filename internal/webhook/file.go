package webhook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
)

// LoadFile applies the config file at path to store. It is the first load
// of WatchFile, done before serving so a broken file stops detour at start.
func LoadFile(store *Store, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	if err := store.Apply(data, path); err != nil && !errors.Is(err, ErrUnchanged) {
		return err
	}
	return nil
}

// WatchFile applies the config file at path to store whenever it changes,
// until ctx is done: on an event in its directory (the kubelet's `..data`
// symlink swap included) and every ConfigPollInterval. A file that cannot be
// read for a moment, as during a swap, leaves the config in use.
func WatchFile(ctx context.Context, store *Store, path string, log *slog.Logger) {
	watchFile(ctx, store, path, log, watching{poll: ConfigPollInterval})
}

func watchFile(ctx context.Context, store *Store, path string, log *slog.Logger, w watching) {
	log = orDiscard(log)
	missing := false
	watchFiles(ctx, log, w, func() {
		data, err := os.ReadFile(path)
		if err != nil {
			if !missing {
				log.Warn("config file unreadable; keeping the config in use", slog.Any("error", err))
			}
			missing = true
			return
		}
		missing = false
		_ = store.Apply(data, path) // Apply logs and counts a refusal
	}, path)
}

// orDiscard returns log, or a logger that drops everything for nil.
func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}
