package webhook

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/detourhq/detour/internal/admission"
	"github.com/detourhq/detour/internal/config"
)

// Snapshot is one accepted config, compiled. It is immutable: a reload makes
// a new Snapshot and swaps it in whole, so a request sees the old config or
// the new one, never a mix and never an empty one.
type Snapshot struct {
	// Config is the parsed config.
	Config *config.Config
	// Policy is what admission reviews run under.
	Policy *admission.Policy
	// Generation counts accepted configs: 1 for the first.
	Generation uint64
	// Source names where the config came from.
	Source string

	sum [sha256.Size]byte // of the source bytes; zero for a Config given as such
}

// Store holds the config in use and swaps in new ones.
type Store struct {
	cur atomic.Pointer[Snapshot]

	ownNamespace string
	newChecker   func(*config.Config) admission.Checker
	metrics      *Metrics
	log          *slog.Logger

	mu      sync.Mutex        // serialises Apply, so generations follow the order of loads
	refused [sha256.Size]byte // of the bytes refused last, if lastErr
	lastErr error
}

// StoreOptions configure a Store.
type StoreOptions struct {
	// OwnNamespace is the webhook's namespace, whose Pods are left alone.
	OwnNamespace string
	// NewChecker, if set, makes the availability Checker for a new config;
	// nil turns availability checking off.
	NewChecker func(*config.Config) admission.Checker
	// Metrics counts reloads; nil counts nothing.
	Metrics *Metrics
	// Log receives one line per accepted or refused config.
	Log *slog.Logger
}

// NewStore makes an empty Store: Load returns nil until a config is applied.
func NewStore(o StoreOptions) *Store {
	return &Store{ownNamespace: o.OwnNamespace, newChecker: o.NewChecker, metrics: o.Metrics, log: orDiscard(o.Log)}
}

// Load returns the config in use, nil before the first one. It is safe to call
// from any goroutine and costs one atomic load.
func (s *Store) Load() *Snapshot { return s.cur.Load() }

// ErrUnchanged is returned by Apply for bytes equal to those in use, or to
// those it refused last.
var ErrUnchanged = errors.New("config unchanged")

// Apply parses data, the content of a config file named source, and swaps it
// in. It returns ErrUnchanged, doing nothing, when data is what is in use
// already or what it refused last. An invalid config is refused with its
// errors (a config.ErrorList naming source as the file), logged and counted,
// and the config in use stays.
func (s *Store) Apply(data []byte, source string) error {
	sum := sha256.Sum256(data)
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.cur.Load(); cur != nil && cur.sum == sum {
		return ErrUnchanged
	}
	if s.lastErr != nil && s.refused == sum {
		return ErrUnchanged
	}
	cfg, err := config.ParseBytes(data)
	if err == nil {
		cfg.Source = source
	}
	err = s.swap(cfg, source, sum, withSource(err, source))
	if err != nil {
		s.refused, s.lastErr = sum, err
	} else {
		s.refused, s.lastErr = [sha256.Size]byte{}, nil
	}
	return err
}

// ApplyConfig swaps in a config already parsed, such as config.Default().
func (s *Store) ApplyConfig(cfg *config.Config) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.swap(cfg, cfg.Source, [sha256.Size]byte{}, nil)
}

// swap compiles cfg and makes it current, or refuses it (and parseErr, when
// set). s.mu is held.
func (s *Store) swap(cfg *config.Config, source string, sum [sha256.Size]byte, parseErr error) error {
	err := parseErr
	var snap *Snapshot
	if err == nil {
		set, cerr := cfg.Compile()
		if cerr != nil {
			err = cerr
		} else {
			var checker admission.Checker
			if s.newChecker != nil {
				checker = s.newChecker(cfg)
			}
			gen := uint64(1)
			if cur := s.cur.Load(); cur != nil {
				gen = cur.Generation + 1
			}
			snap = &Snapshot{
				Config:     cfg,
				Policy:     admission.NewPolicy(cfg, set, s.ownNamespace, checker),
				Generation: gen,
				Source:     source,
				sum:        sum,
			}
		}
	}
	if err != nil {
		if s.metrics != nil {
			s.metrics.reloads.WithLabelValues(reloadFailure).Inc()
		}
		attrs := []any{slog.String("source", source), slog.Any("errors", errorLines(err))}
		if cur := s.cur.Load(); cur != nil {
			attrs = append(attrs, slog.Uint64("keeping_generation", cur.Generation))
		}
		s.log.Error("config refused", attrs...)
		return err
	}
	s.cur.Store(snap)
	if s.metrics != nil {
		s.metrics.reloads.WithLabelValues(reloadSuccess).Inc()
		s.metrics.generation.Set(float64(snap.Generation))
	}
	s.log.Info("config loaded", slog.String("source", snap.Source), slog.Uint64("generation", snap.Generation),
		slog.Int("rules", len(snap.Policy.Rules.Rules())), slog.Bool("enabled", cfg.Enabled))
	return nil
}

// withSource names source as the file of every error in a config.ErrorList.
func withSource(err error, source string) error {
	var list config.ErrorList
	if !errors.As(err, &list) {
		if err != nil {
			return fmt.Errorf("%s: %w", source, err)
		}
		return nil
	}
	out := make(config.ErrorList, len(list))
	for i, e := range list {
		cp := *e
		cp.File = source
		out[i] = &cp
	}
	return out
}

// errorLines splits a config error into its FILE:LINE: message lines.
func errorLines(err error) []string {
	var list config.ErrorList
	if errors.As(err, &list) {
		out := make([]string, len(list))
		for i, e := range list {
			out[i] = e.Error()
		}
		return out
	}
	return []string{err.Error()}
}
