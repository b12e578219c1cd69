package jsonstr

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

var samples = []string{
	"", "nginx:1.25", "a\"b\\c", "\x00\x1f\b\f\n\r\t\x7f", "<>&", "\u2028\u2029", "\xff", "é😀", "\xed\xa0\x80",
	"docker.m.daocloud.io/library/busybox:1.36 -> x", strings.Repeat("abcdefgh", 5) + "<" + strings.Repeat("z", 9) + "\n",
}

// slogString is how slog.JSONHandler writes s as a value.
func slogString(t testing.TB, s string) string {
	var buf bytes.Buffer
	h := slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key != "v" {
			return slog.Attr{} // only the value, for the comparison
		}
		return a
	}})
	slog.New(h).Info("", "v", s)
	out := strings.TrimSuffix(buf.String(), "\n")
	out = strings.TrimPrefix(out, `{"v":`)
	return strings.TrimSuffix(out, "}")
}

func check(t *testing.T, s string) {
	t.Helper()
	want, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if got := Append(nil, s); string(got) != string(want) {
		t.Errorf("Append(%q) = %s, json.Marshal writes %s", s, got, want)
	}
	if got, want := string(AppendNoHTML(nil, s)), slogString(t, s); got != want {
		t.Errorf("AppendNoHTML(%q) = %s, slog.JSONHandler writes %s", s, got, want)
	}
}

func TestAsTheStandardLibraryWrites(t *testing.T) {
	t.Parallel()
	for _, s := range samples {
		check(t, s)
	}
	// Every byte, alone and at every position of an eight-byte word.
	for b := range 256 {
		for pos := range 9 {
			check(t, strings.Repeat("x", pos)+string([]byte{byte(b)})+strings.Repeat("y", 8))
		}
	}
}

func TestAppendsToDst(t *testing.T) {
	t.Parallel()
	if got := string(Append([]byte("k:"), "v")); got != `k:"v"` {
		t.Errorf("Append to %q = %q", "k:", got)
	}
}

func FuzzAsTheStandardLibraryWrites(f *testing.F) {
	for _, s := range samples {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { check(t, s) })
}

func BenchmarkAppend(b *testing.B) {
	s := "ghcr.io/acme/shop-api:v2.14.1 -> ghcr.m.daocloud.io/acme/shop-api:v2.14.1"
	buf := make([]byte, 0, 256)
	b.Run("html", func(b *testing.B) {
		for b.Loop() {
			buf = Append(buf[:0], s)
		}
	})
	b.Run("no-html", func(b *testing.B) {
		for b.Loop() {
			buf = AppendNoHTML(buf[:0], s)
		}
	})
}
