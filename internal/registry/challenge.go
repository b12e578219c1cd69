package registry

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Challenge is one authentication challenge of a WWW-Authenticate header
// (RFC 7235 section 4.1), e.g. Bearer realm="https://auth.example/token",
// service="registry.example", scope="repository:library/nginx:pull".
type Challenge struct {
	// Scheme is the auth scheme as sent ("Bearer", "Basic"); compare it with
	// strings.EqualFold.
	Scheme string
	// Params holds the auth-params, names lower-cased, quoted values
	// unquoted. A token68 (as in `Negotiate abc==`) is stored under "".
	Params map[string]string
}

// Sentinel errors of ParseChallenges, wrapped with the position and input.
var (
	// ErrChallengeSyntax is returned for a header that is not a list of
	// challenges.
	ErrChallengeSyntax = errors.New("malformed WWW-Authenticate")
)

// ParseChallenges parses the value of a WWW-Authenticate header: one or more
// challenges, each a scheme followed by comma-separated name=value
// auth-params (values are tokens or quoted strings) or by one token68. Empty
// list elements and spaces between elements are ignored, as RFC 7230 asks.
// An empty header gives no challenges and no error.
func ParseChallenges(h string) ([]Challenge, error) {
	p := challengeParser{s: h}
	var out []Challenge
	for {
		p.skipListSeparators()
		if p.done() {
			return out, nil
		}
		scheme := p.token()
		if scheme == "" {
			return nil, p.errorf("expected an auth scheme")
		}
		c := Challenge{Scheme: scheme, Params: map[string]string{}}
		spaced := p.skipSpaces()
		if p.done() || p.peek() == ',' {
			out = append(out, c) // a scheme without params
			continue
		}
		if !spaced {
			return nil, p.errorf("expected a space after the scheme %q", scheme)
		}
		if tok, ok := p.token68(); ok {
			c.Params[""] = tok
			out = append(out, c)
			continue
		}
		if err := p.params(c.Params); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
}

// String formats c as it would appear in a header; ParseChallenges reads
// it back to an equal Challenge. Params are sorted by name.
func (c Challenge) String() string {
	var b strings.Builder
	b.WriteString(c.Scheme)
	if tok, ok := c.Params[""]; ok && len(c.Params) == 1 {
		b.WriteByte(' ')
		b.WriteString(tok)
		return b.String()
	}
	names := make([]string, 0, len(c.Params))
	for k := range c.Params {
		if k != "" {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	for i, k := range names {
		if i == 0 {
			b.WriteByte(' ')
		} else {
			b.WriteString(", ")
		}
		b.WriteString(k)
		b.WriteString(`="`)
		for _, r := range []byte(c.Params[k]) {
			if r == '"' || r == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(r)
		}
		b.WriteByte('"')
	}
	return b.String()
}

// findChallenge returns the first challenge with the given scheme.
func findChallenge(cs []Challenge, scheme string) (Challenge, bool) {
	for _, c := range cs {
		if strings.EqualFold(c.Scheme, scheme) {
			return c, true
		}
	}
	return Challenge{}, false
}

type challengeParser struct {
	s   string
	pos int
}

func (p *challengeParser) done() bool { return p.pos >= len(p.s) }
func (p *challengeParser) peek() byte { return p.s[p.pos] }

func (p *challengeParser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w %q: at byte %d: %s", ErrChallengeSyntax, p.s, p.pos, fmt.Sprintf(format, args...))
}

// skipSpaces skips optional white space and reports whether there was any.
func (p *challengeParser) skipSpaces() bool {
	start := p.pos
	for !p.done() && (p.peek() == ' ' || p.peek() == '\t') {
		p.pos++
	}
	return p.pos > start
}

func (p *challengeParser) skipListSeparators() {
	for !p.done() && (p.peek() == ' ' || p.peek() == '\t' || p.peek() == ',') {
		p.pos++
	}
}

// token reads a token (RFC 7230 tchar), "" when there is none.
func (p *challengeParser) token() string {
	start := p.pos
	for !p.done() && isTchar(p.peek()) {
		p.pos++
	}
	return p.s[start:p.pos]
}

// token68 reads a token68 when that is what follows: its characters, then
// optional '=' padding, then the end or a comma. It does not move otherwise.
func (p *challengeParser) token68() (string, bool) {
	start, i := p.pos, p.pos
	for i < len(p.s) && isToken68Char(p.s[i]) {
		i++
	}
	if i == start {
		return "", false
	}
	for i < len(p.s) && p.s[i] == '=' {
		i++
	}
	j := i
	for j < len(p.s) && (p.s[j] == ' ' || p.s[j] == '\t') {
		j++
	}
	if j < len(p.s) && p.s[j] != ',' {
		return "", false // name=value, or garbage for params to report
	}
	p.pos = j
	return p.s[start:i], true
}

// params reads name=value pairs separated by commas into m, up to the end of
// the header or the start of the next challenge (a token not followed by
// '=').
func (p *challengeParser) params(m map[string]string) error {
	for {
		p.skipSpaces()
		if p.done() {
			return nil
		}
		mark := p.pos
		// Skip empty list elements between params.
		if p.peek() == ',' {
			p.skipListSeparators()
			if p.done() {
				return nil
			}
			mark = p.pos
		}
		name := p.token()
		if name == "" {
			return p.errorf("expected an auth-param name")
		}
		p.skipSpaces()
		if p.done() || p.peek() != '=' {
			// The next challenge's scheme; only after a comma.
			if mark == 0 || !p.afterComma(mark) {
				return p.errorf("expected '=' after %q", name)
			}
			p.pos = mark
			return nil
		}
		p.pos++ // '='
		p.skipSpaces()
		value, err := p.value()
		if err != nil {
			return err
		}
		m[strings.ToLower(name)] = value
		p.skipSpaces()
		if p.done() {
			return nil
		}
		if p.peek() != ',' {
			return p.errorf("expected ',' after the value of %q", name)
		}
	}
}

// afterComma reports whether the text before pos, spaces aside, ends in a
// comma.
func (p *challengeParser) afterComma(pos int) bool {
	for i := pos - 1; i >= 0; i-- {
		switch p.s[i] {
		case ' ', '\t':
			continue
		case ',':
			return true
		default:
			return false
		}
	}
	return false
}

// value reads a token or a quoted string.
func (p *challengeParser) value() (string, error) {
	if p.done() {
		return "", nil // `realm=` at the end: an empty token, tolerated
	}
	if p.peek() != '"' {
		return p.token(), nil
	}
	p.pos++
	var b strings.Builder
	for !p.done() {
		c := p.peek()
		p.pos++
		switch c {
		case '"':
			return b.String(), nil
		case '\\':
			if p.done() {
				return "", p.errorf("quoted string ends in a backslash")
			}
			b.WriteByte(p.peek())
			p.pos++
		default:
			b.WriteByte(c)
		}
	}
	return "", p.errorf("unterminated quoted string")
}

func isTchar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func isToken68Char(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~+/", c) >= 0
}
