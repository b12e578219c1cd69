package rules

import (
	"strings"

	"github.com/distribution/reference"
)

// image is one reference split into the parts the rules need. The strings are
// slices of the input (or of the reference library's answer on the slow path),
// so splitting allocates nothing for the common shapes.
type image struct {
	host   string // registry host as written; "" for a Docker Hub short name
	path   string // repository path as written
	suffix string // ":tag", "@digest", ":tag@digest" or "", exactly as written
}

// parseImage splits s. It accepts exactly the strings that
// reference.ParseNormalizedNamed accepts; the error is the library's.
func parseImage(s string) (image, error) {
	if im, ok := scan(s); ok {
		return im, nil
	}
	return parseSlow(s)
}

// parseSlow asks the reference library, for the shapes scan leaves to it:
// IPv6 hosts, digests other than sha256, and every invalid string.
func parseSlow(s string) (image, error) {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return image{}, err
	}
	im := image{host: reference.Domain(named), path: reference.Path(named)}
	if t, ok := named.(reference.Tagged); ok {
		im.suffix = ":" + t.Tag()
	}
	if d, ok := named.(reference.Digested); ok {
		im.suffix += "@" + d.Digest().String()
	}
	return im, nil
}

// scan is the allocation-free recogniser of the common shapes. It returns ok
// only for strings the reference library accepts with the same split; for
// anything it is unsure of it returns false and the library decides.
func scan(s string) (image, bool) {
	if len(s) == 64 && isLowerHex(s) {
		return image{}, false // the library refuses bare identifiers
	}
	var im image
	remainder := s
	if first, rest, ok := strings.Cut(s, "/"); ok {
		if first == "localhost" || strings.ContainsAny(first, ".:") || hasUpper(first) {
			if !scanDomain(first) {
				return image{}, false
			}
			im.host, remainder = first, rest
		}
	}
	name := remainder
	if at := strings.IndexByte(remainder, '@'); at >= 0 {
		name = remainder[:at]
		if !scanDigest(remainder[at+1:]) {
			return image{}, false
		}
	}
	if c := strings.IndexByte(name, ':'); c >= 0 {
		if !scanTag(name[c+1:]) {
			return image{}, false
		}
		name = name[:c]
	}
	if !scanPath(name) {
		return image{}, false
	}
	im.path = name
	im.suffix = remainder[len(name):]
	pathLen := len(name)
	if (im.host == "" || im.host == "docker.io" || im.host == "index.docker.io") && strings.IndexByte(name, '/') < 0 {
		pathLen += len("library/")
	}
	if pathLen > reference.RepositoryNameTotalLengthMax {
		return image{}, false
	}
	return im, true
}

// scanDomain accepts host[:port] where host is a domain name or IPv4 address
// (components of letters, digits and inner dashes, joined by dots). IPv6 is
// left to the library.
func scanDomain(d string) bool {
	host := d
	if c := strings.LastIndexByte(d, ':'); c >= 0 {
		port := d[c+1:]
		if port == "" {
			return false
		}
		for i := 0; i < len(port); i++ {
			if port[i] < '0' || port[i] > '9' {
				return false
			}
		}
		host = d[:c]
	}
	if host == "" {
		return false
	}
	start := 0
	for i := 0; i <= len(host); i++ {
		if i < len(host) && host[i] != '.' {
			c := host[i]
			if !(isAlnum(c) || c >= 'A' && c <= 'Z' || c == '-') {
				return false
			}
			continue
		}
		comp := host[start:i]
		if comp == "" || comp[0] == '-' || comp[len(comp)-1] == '-' {
			return false
		}
		start = i + 1
	}
	return true
}

// scanPath accepts path-component ("/" path-component)* where a component is
// [a-z0-9]+ joined by ".", "_", "__" or one or more "-".
func scanPath(p string) bool {
	if p == "" {
		return false
	}
	for comp := range strings.SplitSeq(p, "/") {
		if !scanComponent(comp) {
			return false
		}
	}
	return true
}

func scanComponent(c string) bool {
	if c == "" || !isAlnum(c[0]) || !isAlnum(c[len(c)-1]) {
		return false
	}
	for i := 1; i < len(c); i++ {
		switch b := c[i]; {
		case isAlnum(b):
		case b == '.':
			if !isAlnum(c[i-1]) || !isAlnum(c[i+1]) {
				return false
			}
		case b == '_':
			// "_" or "__" between alphanumerics.
			if c[i-1] == '_' {
				if i < 2 || !isAlnum(c[i-2]) || !isAlnum(c[i+1]) {
					return false
				}
			} else if !isAlnum(c[i-1]) || (c[i+1] != '_' && !isAlnum(c[i+1])) {
				return false
			}
		case b == '-':
			// Any run of dashes, but only between alphanumerics.
			if c[i-1] != '-' && !isAlnum(c[i-1]) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// scanTag accepts [\w][\w.-]{0,127}.
func scanTag(t string) bool {
	if t == "" || len(t) > 128 || !isWord(t[0]) {
		return false
	}
	for i := 1; i < len(t); i++ {
		if c := t[i]; !isWord(c) && c != '.' && c != '-' {
			return false
		}
	}
	return true
}

// scanDigest accepts "sha256:" and 64 lower-case hex digits, the only form
// go-digest validates as a sha256 digest.
func scanDigest(d string) bool {
	hex, ok := strings.CutPrefix(d, "sha256:")
	return ok && len(hex) == 64 && isLowerHex(hex)
}

func isAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

func isWord(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return true
		}
	}
	return false
}
