package registry

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseChallenges(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		header string
		want   []Challenge // nil with wantErr
		// wantErr: the header is malformed.
		wantErr bool
	}{
		{
			name:   "a distribution bearer challenge keeps realm, service and scope",
			header: `Bearer realm="https://auth.example/token",service="registry.example",scope="repository:library/nginx:pull"`,
			want: []Challenge{{Scheme: "Bearer", Params: map[string]string{
				"realm": "https://auth.example/token", "service": "registry.example", "scope": "repository:library/nginx:pull",
			}}},
		},
		{
			name:   "a basic challenge with spaces around the equals sign",
			header: `Basic realm = "regtest" `,
			want:   []Challenge{{Scheme: "Basic", Params: map[string]string{"realm": "regtest"}}},
		},
		{
			name:   "a scope listing several actions stays one value",
			header: `Bearer realm="https://a/t",scope="repository:a/b:pull,push"`,
			want:   []Challenge{{Scheme: "Bearer", Params: map[string]string{"realm": "https://a/t", "scope": "repository:a/b:pull,push"}}},
		},
		{
			name:   "two challenges in one header",
			header: `Basic realm="x", Bearer realm="https://a/t", service=reg`,
			want: []Challenge{
				{Scheme: "Basic", Params: map[string]string{"realm": "x"}},
				{Scheme: "Bearer", Params: map[string]string{"realm": "https://a/t", "service": "reg"}},
			},
		},
		{
			name:   "param names are case-insensitive, values keep their case",
			header: `bearer Realm="HTTPS://A/T"`,
			want:   []Challenge{{Scheme: "bearer", Params: map[string]string{"realm": "HTTPS://A/T"}}},
		},
		{
			name:   "escaped quotes and backslashes in a quoted value",
			header: `Basic realm="a \"b\" \\ c"`,
			want:   []Challenge{{Scheme: "Basic", Params: map[string]string{"realm": `a "b" \ c`}}},
		},
		{
			name:   "a comma inside a quoted value does not split",
			header: `Bearer realm="https://a/t?x=1,2"`,
			want:   []Challenge{{Scheme: "Bearer", Params: map[string]string{"realm": "https://a/t?x=1,2"}}},
		},
		{
			name:   "schemes without params and empty list elements",
			header: ` , Negotiate,, Basic realm=r ,`,
			want: []Challenge{
				{Scheme: "Negotiate", Params: map[string]string{}},
				{Scheme: "Basic", Params: map[string]string{"realm": "r"}},
			},
		},
		{
			name:   "a token68 challenge followed by another",
			header: `Negotiate YWJj==, Basic realm="r"`,
			want: []Challenge{
				{Scheme: "Negotiate", Params: map[string]string{"": "YWJj=="}},
				{Scheme: "Basic", Params: map[string]string{"realm": "r"}},
			},
		},
		{name: "an empty header has no challenges", header: "", want: nil},
		{name: "an unterminated quoted string", header: `Bearer realm="https://a`, wantErr: true},
		{name: "a quoted string ending in a backslash", header: `Bearer realm="a\`, wantErr: true},
		{name: "a param without a value separator", header: `Bearer realm="a" service`, wantErr: true},
		{name: "a scheme glued to an equals sign", header: `Bearer=x`, wantErr: true},
		{name: "a quote where a scheme should be", header: `"Bearer"`, wantErr: true},
		{name: "garbage after a value", header: `Bearer realm="a"x`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseChallenges(tt.header)
			if tt.wantErr {
				if !errors.Is(err, ErrChallengeSyntax) {
					t.Fatalf("ParseChallenges(%q) = %v, %v; want ErrChallengeSyntax", tt.header, got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseChallenges(%q): %v", tt.header, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseChallenges(%q) =\n %#v\nwant\n %#v", tt.header, got, tt.want)
			}
		})
	}
}

func TestChallengeStringRoundTrips(t *testing.T) {
	t.Parallel()
	c := Challenge{Scheme: "Bearer", Params: map[string]string{"realm": `https://a/"t"`, "service": "a\\b", "scope": ""}}
	got, err := ParseChallenges(c.String())
	if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], c) {
		t.Fatalf("ParseChallenges(%q) = %#v, %v; want %#v", c.String(), got, err, c)
	}
}

// FuzzParseChallenges: never panics; whatever parses formats back to a
// header that parses to the same challenges; a scheme is always a token.
func FuzzParseChallenges(f *testing.F) {
	for _, s := range []string{
		`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"`,
		`Basic realm="regtest"`,
		`Basic realm="x", Bearer realm="https://a/t", service=reg`,
		`Negotiate YWJj==, Basic realm="r"`,
		` , Negotiate,, Basic realm=r ,`,
		`Bearer realm="a \"b\" \\ c"`,
		`Bearer realm=`,
		`Bearer realm=, service=x`,
		`Bearer a=1, b`,
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		cs, err := ParseChallenges(h)
		if err != nil {
			if !errors.Is(err, ErrChallengeSyntax) {
				t.Fatalf("error not wrapping ErrChallengeSyntax: %v", err)
			}
			return
		}
		parts := make([]string, len(cs))
		for i, c := range cs {
			if c.Scheme == "" || strings.IndexFunc(c.Scheme, func(r rune) bool { return r > 127 || !isTchar(byte(r)) }) >= 0 {
				t.Fatalf("scheme %q is not a token (input %q)", c.Scheme, h)
			}
			parts[i] = c.String()
		}
		again := strings.Join(parts, ", ")
		cs2, err := ParseChallenges(again)
		if err != nil {
			t.Fatalf("formatted %q (from %q) does not parse: %v", again, h, err)
		}
		if !reflect.DeepEqual(cs, cs2) {
			t.Fatalf("round trip changed the challenges:\n input %q -> %#v\n formatted %q -> %#v", h, cs, again, cs2)
		}
	})
}
