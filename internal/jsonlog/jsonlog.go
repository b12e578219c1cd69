package jsonlog

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
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
	buf = appendString(buf, r.Level.String())
	buf = append(buf, `,"msg":`...)
	buf = appendString(buf, r.Message)
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
	dst = appendString(dst, a.Key)
	dst = append(dst, ':')
	switch v.Kind() {
	case slog.KindString:
		dst = appendString(dst, v.String())
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

// needsLook reports whether any byte of x is below 0x20, a quote, a
// backslash or 0x80 and above: the "has a zero byte" test, (v - ones) &^ v
// & highs, on x and on x with quotes and backslashes turned to zero.
func needsLook(x uint64) bool {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	q := x ^ ('"' * ones)
	bs := x ^ ('\\' * ones)
	return ((x-0x20*ones)&^x|(q-ones)&^q|(bs-ones)&^bs|x)&highs != 0
}

// appendString appends s as a JSON string exactly as slog.JSONHandler does:
// like encoding/json without HTML escaping.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		// Eight plain ASCII bytes at a time: no control character, quote,
		// backslash or byte of a multi-byte rune among them.
		for i+8 <= len(s) && !needsLook(binary.LittleEndian.Uint64([]byte(s[i:i+8]))) {
			i += 8
		}
		if i >= len(s) {
			break
		}
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
