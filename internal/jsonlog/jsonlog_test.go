package jsonlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// both logs the same thing through New and through slog.NewJSONHandler and
// fails unless the bytes are the same.
func both(t *testing.T, opts *slog.HandlerOptions, prepare func(slog.Handler) slog.Handler, level slog.Level, msg string, attrs ...slog.Attr) string {
	t.Helper()
	var fast, std bytes.Buffer
	hs := []slog.Handler{New(&fast, opts), slog.NewJSONHandler(&std, opts)}
	when := time.Date(2026, 11, 22, 5, 30, 1, 123456000, time.UTC)
	for _, h := range hs {
		if prepare != nil {
			h = prepare(h)
		}
		r := slog.NewRecord(when, level, msg, 0)
		r.AddAttrs(attrs...)
		if h.Enabled(context.Background(), level) {
			if err := h.Handle(context.Background(), r); err != nil {
				t.Fatal(err)
			}
		}
	}
	if fast.String() != std.String() {
		t.Fatalf("jsonlog wrote\n%s\nslog.JSONHandler wrote\n%s", fast.String(), std.String())
	}
	return fast.String()
}

type valuer struct{ v slog.Value }

func (v valuer) LogValue() slog.Value { return v.v }

type panicValuer struct{}

func (panicValuer) LogValue() slog.Value { panic("boom") }

func TestSameBytesAsJSONHandler(t *testing.T) {
	t.Parallel()
	odd := "quote\" back\\ nl\n cr\r tab\t bell\a nul\x00 <html>&amp; \u2028\u2029 é 日本 bad\xff\xfe end"
	cases := []struct {
		name    string
		prepare func(slog.Handler) slog.Handler
		level   slog.Level
		attrs   []slog.Attr
	}{
		{"the webhook's line", func(h slog.Handler) slog.Handler {
			return h.WithAttrs([]slog.Attr{slog.Uint64("config_generation", 3)})
		}, slog.LevelInfo, []slog.Attr{
			slog.String("namespace", "shop"), slog.String("operation", "CREATE"), slog.String("uid", "5f1c"),
			slog.String("generateName", "shop-api-"),
			slog.Any("changes", valuer{slog.GroupValue(slog.String("containers/api", "a -> b"), slog.String("initContainers/w", "c -> d (mirror 2 of 3)"))}),
		}},
		{"odd strings in keys and values", nil, slog.LevelWarn, []slog.Attr{slog.String(odd, odd), slog.String("k", "")}},
		{"numbers and booleans", nil, slog.LevelError, []slog.Attr{slog.Int("i", -42), slog.Int64("min", -1<<63), slog.Uint64("max", 1<<64-1), slog.Bool("t", true), slog.Bool("f", false)}},
		{"custom levels", nil, slog.LevelInfo + 2, []slog.Attr{slog.String("a", "b")}},
		{"debug under a debug level", nil, slog.LevelDebug - 3, nil},
		{"nested groups", nil, slog.LevelInfo, []slog.Attr{slog.Group("g", slog.String("a", "1"), slog.Group("h", slog.Int("b", 2)))}},
		{"more attributes than a record holds inline", nil, slog.LevelInfo, func() (as []slog.Attr) {
			for i := range 12 {
				as = append(as, slog.Int(fmt.Sprint("k", i), i))
			}
			return as
		}()},
		{"chained WithAttrs", func(h slog.Handler) slog.Handler {
			return h.WithAttrs([]slog.Attr{slog.String("component", "client-go")}).WithAttrs([]slog.Attr{slog.Int("n", 1)})
		}, slog.LevelInfo, []slog.Attr{slog.String("x", "y")}},
		// What the fast path hands over: the bytes must still be the standard ones.
		{"a float", nil, slog.LevelInfo, []slog.Attr{slog.String("a", "b"), slog.Float64("f", 0.1)}},
		{"a duration and a time", nil, slog.LevelInfo, []slog.Attr{slog.Duration("d", time.Second), slog.Time("t", time.Unix(0, 0).UTC())}},
		{"an error", nil, slog.LevelError, []slog.Attr{slog.Any("error", errors.New("it broke"))}},
		{"a slice", nil, slog.LevelWarn, []slog.Attr{slog.Any("warnings", []string{"one", "two <&>"})}},
		{"an empty key", nil, slog.LevelInfo, []slog.Attr{slog.String("", "v"), slog.String("k", "v")}},
		{"an empty attribute", nil, slog.LevelInfo, []slog.Attr{{}, slog.String("k", "v")}},
		{"an empty group", nil, slog.LevelInfo, []slog.Attr{slog.Group("g"), slog.String("k", "v")}},
		{"an inlined group", nil, slog.LevelInfo, []slog.Attr{slog.Group("", slog.String("a", "b"))}},
		{"a panicking LogValuer", nil, slog.LevelInfo, []slog.Attr{slog.Any("v", panicValuer{})}},
		{"a float in WithAttrs", func(h slog.Handler) slog.Handler {
			return h.WithAttrs([]slog.Attr{slog.Float64("f", 1.5)})
		}, slog.LevelInfo, []slog.Attr{slog.String("x", "y")}},
		{"WithGroup", func(h slog.Handler) slog.Handler {
			return h.WithAttrs([]slog.Attr{slog.Int("n", 1)}).WithGroup("g").WithAttrs([]slog.Attr{slog.Int("m", 2)})
		}, slog.LevelInfo, []slog.Attr{slog.String("x", "y")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			both(t, &slog.HandlerOptions{Level: slog.LevelDebug - 4}, tc.prepare, tc.level, "message "+tc.name, tc.attrs...)
		})
	}
}

func TestLevelsAndOptions(t *testing.T) {
	t.Parallel()
	// Below the level nothing is written, by either.
	if out := both(t, &slog.HandlerOptions{Level: slog.LevelWarn}, nil, slog.LevelInfo, "hidden"); out != "" {
		t.Errorf("wrote %q below the level", out)
	}
	if out := both(t, nil, nil, slog.LevelInfo, "shown"); !strings.Contains(out, `"msg":"shown"`) {
		t.Errorf("default level Info: wrote %q", out)
	}
	// ReplaceAttr and AddSource get the standard handler itself.
	if _, ok := New(&bytes.Buffer{}, &slog.HandlerOptions{AddSource: true}).(*slog.JSONHandler); !ok {
		t.Error("AddSource: not the standard handler")
	}
	both(t, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}, nil, slog.LevelInfo, "no time", slog.String("k", "v"))
}

func FuzzSameBytesAsJSONHandler(f *testing.F) {
	f.Add("key", "value", "msg", int64(1), true)
	f.Add("a\"b", "c\\d\ne\xff\u2028", "<m&>", int64(-7), false)
	f.Fuzz(func(t *testing.T, key, value, msg string, n int64, b bool) {
		both(t, &slog.HandlerOptions{Level: slog.LevelDebug}, func(h slog.Handler) slog.Handler {
			return h.WithAttrs([]slog.Attr{slog.String(value, key)})
		}, slog.Level(n%16), msg,
			slog.String(key, value), slog.Int64(value, n), slog.Bool(key, b),
			slog.Group(key, slog.String(value, msg)),
			slog.Any("v", valuer{slog.StringValue(value)}))
	})
}

// The records the webhook writes per request take the fast path, and what
// it cannot format does not: both above only prove the bytes are the same.
func TestWhatTakesTheFastPath(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		attr slog.Attr
		fast bool
	}{
		{slog.String("namespace", "shop"), true},
		{slog.Uint64("config_generation", 1), true},
		{slog.Int("n", -1), true},
		{slog.Bool("dryRun", true), true},
		{slog.Any("changes", valuer{slog.GroupValue(slog.String("containers/a", "x -> y"))}), true},
		{slog.Group("g", slog.String("a", "b")), true},
		{slog.Float64("f", 1), false},
		{slog.Any("err", errors.New("e")), false},
		{slog.Any("warnings", []string{"w"}), false},
		{slog.Time("t", time.Now()), false},
		{slog.String("", "v"), false},
		{slog.Group("empty"), false},
		{slog.Group("g", slog.Float64("f", 1)), false},
	} {
		if _, ok := appendAttr(nil, tc.attr, true); ok != tc.fast {
			t.Errorf("%v: fast path %v, want %v", tc.attr, ok, tc.fast)
		}
	}
	h := New(&bytes.Buffer{}, nil)
	if _, ok := h.WithAttrs([]slog.Attr{slog.Uint64("config_generation", 1)}).(*Handler); !ok {
		t.Error("WithAttrs of a number left the fast handler")
	}
	if _, ok := h.WithAttrs([]slog.Attr{slog.Float64("f", 1)}).(*Handler); ok {
		t.Error("WithAttrs of a float kept the fast handler")
	}
}

func BenchmarkHandle(b *testing.B) {
	attrs := []slog.Attr{
		slog.String("namespace", "shop"), slog.String("operation", "CREATE"), slog.String("uid", "5f1c2e8a-3b4d-4c6e-9f7a-1b2c3d4e5f60"),
		slog.String("generateName", "shop-api-7d9f8c6b5d-"),
		slog.Any("changes", valuer{slog.GroupValue(
			slog.String("initContainers/wait-for-db", "busybox:1.36 -> docker.m.daocloud.io/library/busybox:1.36"),
			slog.String("containers/api", "ghcr.io/acme/shop-api:v2.14.1 -> ghcr.m.daocloud.io/acme/shop-api:v2.14.1"),
			slog.String("containers/envoy", "docker.io/envoyproxy/envoy:v1.30.1 -> docker.m.daocloud.io/envoyproxy/envoy:v1.30.1"))}),
	}
	for _, bc := range []struct {
		name string
		h    slog.Handler
	}{
		{"jsonlog", New(discard{}, nil)},
		{"slog.JSONHandler", slog.NewJSONHandler(discard{}, nil)},
	} {
		h := bc.h.WithAttrs([]slog.Attr{slog.Uint64("config_generation", 1)})
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r := slog.NewRecord(time.Now(), slog.LevelInfo, "pod images rewritten", 0)
				r.AddAttrs(attrs...)
				if err := h.Handle(context.Background(), r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
