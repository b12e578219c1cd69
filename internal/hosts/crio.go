package hosts

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/detourhq/detour/internal/rules"
)

// crioFile is the file CRI-O, podman and skopeo read their registries from.
const crioFile = "registries.conf"

// containers/image, which reads registries.conf for CRI-O, parses references
// with a grammar that has no IPv6 hosts: it could not rewrite to one.
const noIPv6 = "containers/image (CRI-O, podman) has no IPv6 registry hosts in its reference grammar"

var errIPv6 = errors.New(noIPv6)

func (p *plan) crio() Result {
	res := Result{Files: map[string][]byte{}}
	if p.wildcard != nil {
		res.Unexpressible = append(res.Unexpressible, Unexpressible{Rule: *p.wildcard, Reason: "registries.conf has no prefix " +
			"that matches every registry: images of registries without a rule of their own are pulled from those registries"})
	}

	type entry struct {
		host, prefix string
		rule         rules.Rule
	}
	var entries []entry
	for _, host := range p.hosts {
		entries = append(entries, entry{host, host, p.whole[host]})
	}
	for _, pr := range p.paths {
		entries = append(entries, entry{pr.host, pr.host + "/" + pr.path, pr.rule})
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.prefix, b.prefix) })

	var b strings.Builder
	b.WriteString(p.header(CRIO))
	// Short names mean Docker Hub, as they do for Docker and for detour's rules.
	b.WriteString("\nunqualified-search-registries = [\"docker.io\"]\n")
	written := 0
	for _, e := range entries {
		if isIPv6(e.host) {
			res.Unexpressible = append(res.Unexpressible, Unexpressible{Rule: e.rule, Reason: noIPv6})
			continue
		}
		all, bad := p.chain(e.rule, e.host)
		var good []target
		for _, t := range all {
			if isIPv6(t.host) {
				bad = append(bad, badMirror{t.name(), errIPv6})
				continue
			}
			good = append(good, t)
		}
		res.Unexpressible = append(res.Unexpressible, badReasons(e.rule, good, bad, func(err error) string {
			if err == errIPv6 {
				return noIPv6
			}
			return fmt.Sprintf("%v (for %s)", err, e.host)
		})...)
		if len(good) == 0 {
			continue
		}
		written++
		fmt.Fprintf(&b, "\n# %s\n[[registry]]\n", comment(describe(e.rule)))
		// location equal to prefix: the registry itself, tried after the
		// mirrors.
		fmt.Fprintf(&b, "prefix = %s\nlocation = %s\n", tomlString(e.prefix), tomlString(e.prefix))
		if p.plain(e.host) {
			b.WriteString("insecure = true\n")
		}
		for _, t := range good {
			fmt.Fprintf(&b, "\n[[registry.mirror]]\nlocation = %s\n", tomlString(t.name()))
			if t.plain {
				b.WriteString("insecure = true\n")
			}
		}
	}
	if written == 0 {
		res.Notes = append(res.Notes, "No rule can be expressed in registries.conf; nothing to install.")
		return res
	}
	res.Files[crioFile] = []byte(b.String())
	res.Notes = append(res.Notes,
		"Install as /etc/containers/registries.conf, or as a drop-in such as /etc/containers/registries.conf.d/50-detour.conf,",
		"then restart CRI-O (systemctl restart crio). podman, buildah and skopeo read the same file.",
		"CRI-O tries the mirrors in order, then the registry itself (location). insecure = true allows plain HTTP.",
	)
	return res
}
