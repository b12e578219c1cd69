package convert

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/detourhq/detour/internal/rules"
)

// mirrorEntry is one key: value of an image_mirrors map.
type mirrorEntry struct {
	key, value string
	line       int // of the key
	dup        int // line of an earlier entry with the same key, which this one replaced
}

// FromContainerMirror converts a container-mirror image_mirrors prefix map
// to a detour config. data is the Python source holding
// `image_mirrors = {...}` (the Lambda code, or the CloudFormation template
// it is inlined in), or a JSON object.
func FromContainerMirror(data []byte) ([]byte, error) {
	entries, err := parseImageMirrors(data)
	if err != nil {
		return nil, err
	}
	return writeContainerMirror(entries)
}

// imageMirrorsStart finds the assignment `image_mirrors = {`.
var imageMirrorsStart = regexp.MustCompile(`\bimage_mirrors[ \t]*=[ \t]*(?:\\\r?\n[ \t]*)?\{`)

// parseImageMirrors finds the dict and reads its entries in order; a key
// given twice keeps its first place and its last value, as in Python.
func parseImageMirrors(data []byte) ([]mirrorEntry, error) {
	if !utf8.Valid(data) {
		return nil, errorf(lineAt(data, firstInvalid(data)), "the input is not UTF-8")
	}
	p := &dictParser{data: data}
	json := false
	start := -1
	for _, m := range imageMirrorsStart.FindAllIndex(data, -1) {
		lineStart := bytes.LastIndexByte(data[:m[0]], '\n') + 1
		if bytes.IndexByte(data[lineStart:m[0]], '#') < 0 { // not in a comment
			start = m[1] - 1
			break
		}
	}
	if start < 0 {
		p.pos = 0
		p.skipSpace()
		if p.pos >= len(data) || data[p.pos] != '{' {
			return nil, errorf(0, "found no `image_mirrors = {...}` and the input is not a JSON object: "+
				"give container-mirror's api-gateway.yaml or Lambda code, or a JSON object of prefix: mirror")
		}
		start, json = p.pos, true
	}
	p.pos = start + 1
	var entries []mirrorEntry
	index := map[string]int{}
	for {
		p.skipSpace()
		if p.pos >= len(data) {
			return nil, errorf(p.line(start), "the image_mirrors dict opened here is never closed")
		}
		if data[p.pos] == '}' {
			p.pos++
			break
		}
		keyLine := p.line(p.pos)
		key, err := p.str("key")
		if err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.pos >= len(data) || data[p.pos] != ':' {
			return nil, p.unexpected("':' after the key " + q(key))
		}
		p.pos++
		p.skipSpace()
		value, err := p.str("value of " + q(key))
		if err != nil {
			return nil, err
		}
		if i, dup := index[key]; dup {
			entries[i].value, entries[i].dup = value, keyLine
		} else {
			index[key] = len(entries)
			entries = append(entries, mirrorEntry{key: key, value: value, line: keyLine})
		}
		p.skipSpace()
		switch {
		case p.pos < len(data) && data[p.pos] == ',':
			p.pos++
		case p.pos < len(data) && data[p.pos] == '}':
		default:
			return nil, p.unexpected("',' or '}' after the value of " + q(key))
		}
	}
	if json {
		p.skipSpace()
		if p.pos < len(data) {
			return nil, p.unexpected("nothing after the object")
		}
	}
	return entries, nil
}

type dictParser struct {
	data []byte
	pos  int
}

func (p *dictParser) line(pos int) int { return lineAt(p.data, pos) }

func lineAt(data []byte, pos int) int {
	if pos > len(data) {
		pos = len(data)
	}
	return bytes.Count(data[:pos], []byte{'\n'}) + 1
}

func firstInvalid(data []byte) int {
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(data)
}

func (p *dictParser) unexpected(want string) error {
	if p.pos >= len(p.data) {
		return errorf(p.line(p.pos), "want %s, found the end of the input", want)
	}
	r, _ := utf8.DecodeRune(p.data[p.pos:])
	return errorf(p.line(p.pos), "want %s, found %s", want, strconv.QuoteRune(r))
}

// skipSpace skips whitespace, line breaks, # comments and backslash line
// continuations.
func (p *dictParser) skipSpace() {
	d := p.data
	for p.pos < len(d) {
		switch c := d[p.pos]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			p.pos++
		case c == '#':
			for p.pos < len(d) && d[p.pos] != '\n' {
				p.pos++
			}
		case c == '\\' && p.pos+1 < len(d) && (d[p.pos+1] == '\n' || d[p.pos+1] == '\r'):
			p.pos++
		default:
			return
		}
	}
}

// str reads a string literal, and any literals that follow it on the same
// logical line (Python joins 'a' 'b' into 'ab').
func (p *dictParser) str(what string) (string, error) {
	s, err := p.literal(what)
	if err != nil {
		return "", err
	}
	for {
		save := p.pos
		p.skipSpace()
		if !p.atLiteral() {
			p.pos = save
			return s, nil
		}
		more, err := p.literal(what)
		if err != nil {
			return "", err
		}
		s += more
	}
}

// atLiteral reports whether a string literal starts here: an optional
// prefix of letters, then a quote.
func (p *dictParser) atLiteral() bool {
	d := p.data
	i := p.pos
	for i < len(d) && i-p.pos < 2 && strings.IndexByte("rRuUbBfF", d[i]) >= 0 {
		i++
	}
	return i < len(d) && (d[i] == '\'' || d[i] == '"')
}

func (p *dictParser) literal(what string) (string, error) {
	d := p.data
	start := p.pos
	raw := false
	for p.pos < len(d) && p.pos-start < 2 && strings.IndexByte("rRuUbBfF", d[p.pos]) >= 0 {
		switch d[p.pos] {
		case 'r', 'R':
			raw = true
		case 'b', 'B', 'f', 'F':
			return "", errorf(p.line(p.pos), "the %s is a bytes or f-string literal; write a plain string", what)
		}
		p.pos++
	}
	if p.pos >= len(d) || (d[p.pos] != '\'' && d[p.pos] != '"') {
		p.pos = start
		end := start
		for end < len(d) && d[end] != ',' && d[end] != '}' && d[end] != '\n' && end-start < 40 {
			end++
		}
		return "", errorf(p.line(start), "the %s must be a string literal, found %s: write the prefix out in quotes",
			what, q(strings.TrimSpace(string(d[start:end]))))
	}
	quote := d[p.pos]
	if p.pos+2 < len(d) && d[p.pos+1] == quote && d[p.pos+2] == quote {
		return "", errorf(p.line(p.pos), "the %s is a triple-quoted string; write it in single or double quotes", what)
	}
	open := p.pos
	p.pos++
	var b strings.Builder
	for {
		if p.pos >= len(d) || d[p.pos] == '\n' || d[p.pos] == '\r' {
			return "", errorf(p.line(open), "the string opened here is not closed on its line")
		}
		c := d[p.pos]
		switch {
		case c == quote:
			p.pos++
			return b.String(), nil
		case c == '\\' && !raw:
			if err := p.escape(&b); err != nil {
				return "", err
			}
		default:
			b.WriteByte(c)
			p.pos++
		}
	}
}

// escape decodes one backslash escape, in the subset Python and JSON share
// (plus JSON's \/).
func (p *dictParser) escape(b *strings.Builder) error {
	d := p.data
	at := p.pos
	if p.pos+1 >= len(d) {
		return errorf(p.line(at), "a string ends in a lone backslash")
	}
	c := d[p.pos+1]
	p.pos += 2
	switch c {
	case '\\', '\'', '"', '/':
		b.WriteByte(c)
	case 'n':
		b.WriteByte('\n')
	case 't':
		b.WriteByte('\t')
	case 'r':
		b.WriteByte('\r')
	case '\n':
		// A line continuation inside the string.
	case 'x', 'u':
		n := 2
		if c == 'u' {
			n = 4
		}
		if p.pos+n > len(d) {
			return errorf(p.line(at), "a \\%c escape needs %d hex digits", c, n)
		}
		v, err := strconv.ParseUint(string(d[p.pos:p.pos+n]), 16, 32)
		if err != nil {
			return errorf(p.line(at), "a \\%c escape needs %d hex digits", c, n)
		}
		b.WriteRune(rune(v))
		p.pos += n
	default:
		return errorf(p.line(at), "the escape \\%c is not supported in a registry prefix", c)
	}
	return nil
}

// cmRule is one detour rule made from the map, maybe written commented out.
type cmRule struct {
	from, to string
	line     int
	notes    []string
	disabled string
}

// writeContainerMirror turns the entries into a detour config.
func writeContainerMirror(entries []mirrorEntry) ([]byte, error) {
	escape, escapeNote := "", ""
	var extraEscapes []mirrorEntry
	var plan []cmRule
	var hub *mirrorEntry // the "/" key: images without a registry host
	for i := range entries {
		e := entries[i]
		switch {
		case strings.TrimSpace(e.value) == "":
			if escape != "" {
				extraEscapes = append(extraEscapes, e)
				continue
			}
			escape = strings.TrimSpace(e.key)
			if escape == "" || escape == "/" {
				return nil, errorf(e.line, "the key %s maps to nothing: that would remove the start of every image", q(e.key))
			}
			if !strings.HasSuffix(escape, "/") {
				escape += "/"
				escapeNote = fmt.Sprintf(" The key %s had no trailing /, so container-mirror left a leading / on the image; detour's escape prefix ends in /.", q(e.key))
			}
		case strings.TrimSpace(e.key) == "/":
			hub = &entries[i]
		default:
			r, err := cmPlanRule(e)
			if err != nil {
				return nil, err
			}
			plan = append(plan, r)
		}
	}
	var hubRules []cmRule
	if hub != nil {
		to := strings.TrimSuffix(strings.TrimSpace(hub.value), "/")
		if err := checkRule("docker.io", to); err != nil {
			return nil, errorf(hub.line, "the value of %s: %s: %s%s", q(hub.key), q(hub.value), ruleMsg(err), placeholderHint(hub.value))
		}
		hubRules = []cmRule{
			{from: "docker.io/library", to: to, line: hub.line},
			{from: "docker.io", to: to, line: hub.line},
		}
	}
	// Explicit keys first: a "/"-made rule yields to one for the same from.
	all := append(plan, hubRules...)
	froms := make([]string, len(all))
	for i, r := range all {
		if r.disabled == "" {
			froms[i] = r.from
		}
	}
	for i, keep := range sameFrom(froms) {
		all[i].disabled = fmt.Sprintf("detour reads %s as the same prefix as %s (line %d), which is kept.", q(all[i].from), q(all[keep].from), all[keep].line)
		all[i].notes = nil
	}

	o := &out{}
	o.comment("", "detour config converted from a container-mirror image_mirrors map (detour config convert --from container-mirror). "+
		"Comments mark where detour behaves differently: read them before you switch.")
	o.blank("")
	o.comment("", "container-mirror tried its keys as plain text prefixes, in dict order (an arbitrary order under Python 2.7), "+
		"and used the first that matched. detour matches whole path segments (gcr.io/google-containers does not match "+
		"gcr.io/google-containers-x/y) and the longest matching from wins, whatever the order.")
	o.blank("")
	o.comment("", "Tags and digests: detour keeps them exactly as written, in every image it rewrites.")
	o.line("enabled: true")
	o.comment("", "container-mirror rewrote only images matching its prefixes; presets: [] keeps detour's built-in daocloud "+
		"preset from adding rules for other registries (registry.k8s.io, ghcr.io, ... stay as they are, as before).")
	o.line("presets: []")
	switch {
	case escape == "":
		escape = rules.DefaultEscapePrefix
		o.comment("", "container-mirror's webhook documents the escape direct.to/ (direct.to/busybox:latest runs busybox:latest, "+
			"pulled from its source); it keeps working here. \"\" turns it off.")
	case escape == rules.DefaultEscapePrefix:
		o.comment("", "From the key \"direct.to/\": '' (an escape: direct.to/busybox:latest runs busybox:latest, pulled from its source); "+
			"it keeps working here."+escapeNote)
	default:
		o.comment("", fmt.Sprintf("From the key %s: '': an image starting with it loses the prefix and is pulled from its source. "+
			"detour has one escape prefix; direct.to/ is not one any more.%s", q(strings.TrimSuffix(escape, "/")+"/"), escapeNote))
	}
	for _, e := range extraEscapes {
		o.comment("", fmt.Sprintf("Left out: the key %s (line %d) also maps to nothing, but detour has a single escape prefix.", q(e.key), e.line))
	}
	o.line("escapePrefix: %s", str(escape))
	o.comment("", "container-mirror's MutatingWebhookConfiguration chose the namespaces; these are detour's defaults.")
	o.line("namespaces:")
	o.line("  include: [\"*\"]")
	o.line("  exclude: [kube-system, kube-public, kube-node-lease]")
	active := 0
	for _, r := range all {
		if r.disabled == "" {
			active++
		}
	}
	if hub == nil {
		o.comment("", "This map has no \"/\" key, so container-mirror left Docker Hub images alone, and so does this config. "+
			"(Where its \"/\" key was used, it sent docker.io/library/nginx to .../dockerhub/library/nginx while the NWCD "+
			"mirror stores dockerhub/nginx. detour's nwcd preset maps Docker Hub the way that mirror stores it, "+
			"docker.io/library to .../dockerhub and docker.io to .../dockerhub: add nwcd to presets to use it.)")
	}
	if active == 0 {
		o.comment("", "The map had no prefix to rewrite; neither does this config.")
		o.line("mirrors: []")
	} else {
		o.line("mirrors:")
	}
	for i, r := range all {
		if hub != nil && i == len(plan) {
			o.comment("  ", fmt.Sprintf("From the key \"/\" (line %d), M = %s. container-mirror sent images without a "+
				"registry host there: nginx to M/nginx, bitnami/redis to M/bitnami/redis, but library/nginx and "+
				"docker.io/library/nginx to M/library/nginx, which its mirror does not have (it stores M/nginx), and "+
				"localhost:5000/x to M/localhost:5000/x. These two rules do what detour's nwcd preset does: Docker Hub "+
				"official images, however written, go to M/NAME, other Docker Hub images to M/ORG/NAME, and an image "+
				"with a registry host is never taken for a Docker Hub one.", hub.line, r.to))
		}
		for _, n := range r.notes {
			o.comment("  ", n)
		}
		if r.disabled != "" {
			o.comment("  ", "Left out: "+r.disabled)
		}
		o.rule(r.from, r.to, r.disabled != "")
	}
	return finish(o)
}

// cmPlanRule makes the rule for one prefix key.
func cmPlanRule(e mirrorEntry) (cmRule, error) {
	key, value := strings.TrimSpace(e.key), strings.TrimSpace(e.value)
	r := cmRule{from: strings.TrimSuffix(key, "/"), to: strings.TrimSuffix(value, "/"), line: e.line}
	if e.dup > 0 {
		r.notes = append(r.notes, fmt.Sprintf("The key %s is given again at line %d; as in Python, the later value counts.", q(e.key), e.dup))
	}
	host, _, _ := strings.Cut(r.from, "/")
	switch {
	case r.from == "":
		return r, errorf(e.line, "the key %s is empty", q(e.key))
	case !rules.IsRegistryHost(host):
		// A Docker Hub namespace written without the host ("bitnami/").
		r.notes = append(r.notes, fmt.Sprintf("The key %s has no registry host: container-mirror matched images written "+
			"with that prefix; detour reads them as Docker Hub images under %s, which also matches them written with "+
			"docker.io/ in front.", q(e.key), "docker.io/"+r.from))
		r.from = "docker.io/" + r.from
	case strings.EqualFold(host, "docker.io"):
		r.notes = append(r.notes, "container-mirror matched only images written with docker.io/ in front; detour matches "+
			"every Docker Hub image under this from, however it is written (nginx, library/nginx, docker.io/nginx).")
	}
	if err := checkRule(r.from, "example.com"); err != nil {
		return r, errorf(e.line, "the key %s is not a registry prefix detour can match: %s", q(e.key), ruleMsg(err))
	}
	if err := checkRule(r.from, r.to); err != nil {
		return r, errorf(e.line, "the value of %s: %s: %s%s", q(e.key), q(e.value), ruleMsg(err), placeholderHint(e.value))
	}
	if !strings.HasSuffix(key, "/") {
		r.notes = append(r.notes, fmt.Sprintf("The key %s has no trailing /: container-mirror also matched images merely starting "+
			"with that text (%s); detour matches whole path segments.", q(e.key), q(key+"-other/x")))
	}
	if strings.HasSuffix(key, "/") && !strings.HasSuffix(value, "/") {
		r.notes = append(r.notes, fmt.Sprintf("The value %s has no trailing / while its key has one: container-mirror glued the "+
			"rest of the image straight on (%s); detour puts a / between.", q(e.value), q(value+"pause:3.9")))
	}
	return r, nil
}

func placeholderHint(v string) string {
	if strings.ContainsAny(v, "<>") {
		return " (replace the <...> placeholder with your mirror)"
	}
	return ""
}
