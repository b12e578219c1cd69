package yamlsrc

import (
	"errors"
	"testing"
)

func TestLocateFindsTheBreakingLine(t *testing.T) {
	for _, tc := range []struct {
		in       string
		line     int
		msgStart string
	}{
		// yaml.v3 itself says line 1 for the first two.
		{"mirrors:\n  - from: a\n   to: b\n", 3, "did not find expected '-' indicator"},
		{"a: b\nc: [d\ne: f\n", 2, "did not find expected ',' or ']'"}, // the unclosed bracket
		{"a: b\n\tc: d\n", 2, "found a tab character"},
		{"x: y\na: b: c\n", 2, "mapping values are not allowed"},
	} {
		_, err := DecodeAll([]byte(tc.in))
		if err == nil {
			t.Fatalf("%q parsed", tc.in)
		}
		line, msg, ok := Locate([]byte(tc.in), nil, err)
		if !ok || line != tc.line || len(msg) < len(tc.msgStart) || msg[:len(tc.msgStart)] != tc.msgStart {
			t.Errorf("%q: Locate = %d %q %v, want line %d %q (yaml.v3 said %v)", tc.in, line, msg, ok, tc.line, tc.msgStart, err)
		}
	}
}

func TestLocateWithoutALine(t *testing.T) {
	_, msg, ok := Locate(nil, nil, errors.New("yaml: invalid leading UTF-8 octet"))
	if ok || msg != "invalid leading UTF-8 octet" {
		t.Fatalf("got %q %v", msg, ok)
	}
}
