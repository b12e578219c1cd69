package jsonlog

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/detourhq/detour/internal/jsonstr"
)

// Handler is the fast handler; New makes one.
type Handler struct {
	out   *lockedWriter
	level slog.Leveler
	std   slog.Handler // slog.JSONHandler with the same attributes
	pre   []byte       // the WithAttrs attributes, formatted, each with its leading comma
}

var _ slog.Handler = (*Handler)(nil)

// New returns a handler writing JSON lines to w as slog.NewJSONHandler(w,
// opts) would. With AddSource or ReplaceAttr set it returns exactly that.
func New(w io.Writer, opts *slog.HandlerOptions) slog.Handler {
	if opts == nil {
		opts = &slog.HandlerOptions{}
	}
	if opts.AddSource || opts.ReplaceAttr != nil {
		return slog.NewJSONHandler(w, opts)
	}
	out := &lockedWriter{w: w}
	level := opts.Level
	if level == nil {
		level = slog.LevelInfo
	}
	return &Handler{out: out, level: level, std: slog.NewJSONHandler(out, opts)}
}

// lockedWriter makes each Write whole with respect to the others: the fast
// path and the standard handler write to it, one line per Write.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(_ context.Context, level slog.Level) bool {
	return level >= h.level.Level()
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	std := h.std.WithAttrs(attrs)
	pre := append([]byte(nil), h.pre...)
	for _, a := range attrs {
		var ok bool
		if pre, ok = appendAttr(pre, a, true); !ok {
			return std // from now on the standard handler does all
		}
	}
	return &Handler{out: h.out, level: h.level, std: std, pre: pre}
}

// WithGroup implements slog.Handler: groups opened this way are left to the
// standard handler (detour does not use them).
func (h *Handler) WithGroup(name string) slog.Handler {
	return h.std.WithGroup(name)
}

var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// Handle implements slog.Handler.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	if y := r.Time.Year(); r.Time.IsZero() || y < 0 || y >= 10000 {
		return h.std.Handle(ctx, r)
	}
	bp := bufs.Get().(*[]byte)
	defer func() {
		if cap(*bp) <= 64<<10 {
			bufs.Put(bp)
		}
	}()
	buf := append((*bp)[:0], `{"time":"`...)
	buf = r.Time.AppendFormat(buf, time.RFC3339Nano)
	buf = append(buf, `","level":`...)
	buf = jsonstr.AppendNoHTML(buf, r.Level.String())
	buf = append(buf, `,"msg":`...)
	buf = jsonstr.AppendNoHTML(buf, r.Message)
	buf = append(buf, h.pre...)
	ok := true
	r.Attrs(func(a slog.Attr) bool {
		buf, ok = appendAttr(buf, a, true)
		return ok
	})
	*bp = buf
	if !ok {
		return h.std.Handle(ctx, r)
	}
	buf = append(buf, '}', '\n')
	*bp = buf
	_, err := h.out.Write(buf)
	return err
}

// appendAttr appends a as a JSON member, after a comma if comma, and
// reports false, with dst in an undefined state, for what only the standard
// handler formats.
func appendAttr(dst []byte, a slog.Attr, comma bool) ([]byte, bool) {
	if a.Key == "" {
		return dst, false // ignored or inlined by slog's rules
	}
	v := a.Value.Resolve()
	if comma {
		dst = append(dst, ',')
	}
	dst = jsonstr.AppendNoHTML(dst, a.Key)
	dst = append(dst, ':')
	switch v.Kind() {
	case slog.KindString:
		dst = jsonstr.AppendNoHTML(dst, v.String())
	case slog.KindInt64:
		dst = strconv.AppendInt(dst, v.Int64(), 10)
	case slog.KindUint64:
		dst = strconv.AppendUint(dst, v.Uint64(), 10)
	case slog.KindBool:
		dst = strconv.AppendBool(dst, v.Bool())
	case slog.KindGroup:
		attrs := v.Group()
		if len(attrs) == 0 {
			return dst, false // slog leaves empty groups out
		}
		dst = append(dst, '{')
		for i, ga := range attrs {
			var ok bool
			if dst, ok = appendAttr(dst, ga, i > 0); !ok {
				return dst, false
			}
		}
		dst = append(dst, '}')
	default:
		return dst, false
	}
	return dst, true
}
