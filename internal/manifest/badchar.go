package manifest

import "unicode/utf8"

// badCharLine returns the 1-based line of the first byte sequence that YAML
// does not allow in a stream (invalid UTF-8, or a control character other
// than tab and the line breaks), 0 if there is none.
func badCharLine(data []byte) int {
	s := newSource(data)
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if (r == utf8.RuneError && size <= 1) || !yamlChar(r) {
			return s.lineOf(i)
		}
		i += size
	}
	return 0
}

// yamlChar reports whether YAML 1.2 allows r in a stream (c-printable).
func yamlChar(r rune) bool {
	switch {
	case r == '\t' || r == '\n' || r == '\r' || r == 0x85:
		return true
	case r >= 0x20 && r <= 0x7E:
		return true
	case r >= 0xA0 && r <= 0xD7FF, r >= 0xE000 && r <= 0xFFFD, r >= 0x10000 && r <= 0x10FFFF:
		return true
	}
	return false
}
