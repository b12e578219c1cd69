package hosts

import (
	"fmt"
	"slices"
	"strings"

	"github.com/detourhq/detour/internal/rules"
)

// DefaultContainerdDir is where containerd's hosts directories usually live.
const DefaultContainerdDir = "/etc/containerd/certs.d"

// containerdDefaultDir is the hosts directory containerd consults for a
// registry without one of its own.
const containerdDefaultDir = "_default"

func (p *plan) containerd() Result {
	res := Result{Files: map[string][]byte{}}
	why := func(host string) func(error) string {
		return func(err error) string {
			if err == errTemplate {
				return `containerd's _default/hosts.toml gives every registry the same URLs, so a mirror path cannot name the source registry ("{registry}")`
			}
			return fmt.Sprintf("%v (for %s)", err, host)
		}
	}

	var wildcard []target
	if p.wildcard != nil {
		var bad []badMirror
		wildcard, bad = p.chain(*p.wildcard, "")
		res.Unexpressible = append(res.Unexpressible, badReasons(*p.wildcard, wildcard, bad, why(""))...)
	}
	chains := map[string][]target{} // source host -> expressed chain
	for _, host := range p.hosts {
		r := p.whole[host]
		good, bad := p.chain(r, host)
		u := badReasons(r, good, bad, why(host))
		if len(good) == 0 && len(wildcard) > 0 && len(u) > 0 {
			u[len(u)-1].Reason += `; containerd will send its images to the "*" rule's mirrors in _default/hosts.toml instead`
		}
		res.Unexpressible = append(res.Unexpressible, u...)
		if len(good) > 0 {
			chains[host] = good
		}
	}

	// A path rule is expressed when the registry-wide chain containerd will
	// use for its images already sends them to the same place.
	covered := map[string][]string{} // source host -> path rules its file expresses
	var coveredByDefault []string    // path rules _default expresses
	for _, pr := range p.paths {
		base, baseFrom := chains[pr.host], ""
		if base != nil {
			baseFrom = p.whole[pr.host].From
		} else if wildcard != nil {
			base, baseFrom = wildcard, rules.Wildcard
		}
		c, _ := p.chain(pr.rule, pr.host)
		if sameMapping(c, pr.path, base) {
			if baseFrom == rules.Wildcard {
				coveredByDefault = append(coveredByDefault, pr.rule.From)
			} else {
				covered[pr.host] = append(covered[pr.host], pr.rule.From)
			}
			continue
		}
		instead := fmt.Sprintf("are pulled from %s itself", pr.host)
		switch {
		case baseFrom == rules.Wildcard:
			instead = fmt.Sprintf(`follow the "*" rule in _default/hosts.toml instead (%s/%s/...)`, base[0].name(), pr.path)
		case base != nil:
			instead = fmt.Sprintf("follow the %s rule instead (%s/%s/...)", baseFrom, base[0].name(), pr.path)
		}
		res.Unexpressible = append(res.Unexpressible, Unexpressible{Rule: pr.rule, Reason: fmt.Sprintf(
			"containerd's hosts.toml maps whole registries, not paths: images under %s/%s %s", pr.host, pr.path, instead)})
	}

	for _, host := range p.hosts {
		c := chains[host]
		if c == nil {
			continue
		}
		var b strings.Builder
		b.WriteString(p.header(Containerd))
		b.WriteString("#\n# " + comment(describe(p.whole[host])) + "\n")
		for _, from := range covered[host] {
			b.WriteString("# Also expresses " + comment(from) + ": its rule gives the same mirrors.\n")
		}
		fmt.Fprintf(&b, "server = %s\n", tomlString(serverURL(host, p.plain(host))))
		writeContainerdHosts(&b, c)
		res.Files[containerdDir(host)+"/hosts.toml"] = []byte(b.String())
	}

	if p.wildcard != nil && len(wildcard) > 0 {
		var b strings.Builder
		b.WriteString(p.header(Containerd))
		b.WriteString("#\n# " + comment(describe(*p.wildcard)) + "\n")
		b.WriteString("# Used for every registry without a directory of its own here (mirrors too:\n")
		b.WriteString("# their images are asked of these mirrors first); containerd falls back to\n")
		b.WriteString("# the image's own registry when no mirror answers.\n")
		for _, from := range coveredByDefault {
			b.WriteString("# Also expresses " + comment(from) + ": its rule gives the same mirrors.\n")
		}
		writeContainerdHosts(&b, wildcard)
		res.Files[containerdDefaultDir+"/hosts.toml"] = []byte(b.String())
	}

	dir := p.opts.Dir
	if dir == "" {
		dir = DefaultContainerdDir
	}
	if len(res.Files) == 0 {
		res.Notes = append(res.Notes, "No rule can be expressed as a containerd hosts.toml; nothing to install.")
		return res
	}
	res.Notes = append(res.Notes,
		fmt.Sprintf("Install each <registry>/hosts.toml under %s; containerd reads them on every pull, no restart needed.", dir),
		"Point containerd's CRI plugin at that directory once, in /etc/containerd/config.toml, then restart containerd:",
		"  containerd 1.x (config version = 2):",
		`    [plugins."io.containerd.grpc.v1.cri".registry]`,
		"      config_path = "+tomlString(dir),
		"  containerd 2.x (config version = 3):",
		`    [plugins."io.containerd.cri.v1.images".registry]`,
		"      config_path = "+tomlString(dir),
		"Remove any registry.mirrors entries from config.toml: containerd refuses them together with config_path.",
		"containerd tries the mirrors in order and then the registry itself (server) when none of them answers.",
		fmt.Sprintf("ctr reads the directory only when told: ctr images pull --hosts-dir %s IMAGE.", dir),
	)
	return res
}

// writeContainerdHosts writes one [host."URL"] table per mirror, in chain
// order, which is the order containerd tries them (it sorts them by line).
func writeContainerdHosts(b *strings.Builder, chain []target) {
	if slices.ContainsFunc(chain, func(t target) bool { return isIPv6(t.host) }) {
		// containerd 1.x reads hosts.toml with go-toml v1, which refuses a
		// table header whose quoted key holds "]" (an IPv6 host) and loses
		// the order of inline tables; dotted keys it reads, in order.
		b.WriteString("\n# Dotted keys: containerd 1.x cannot read an IPv6 host in a [host.\"...\"] header.\n[host]\n")
		for _, t := range chain {
			key := tomlString(mirrorURL(t))
			fmt.Fprintf(b, "  %s.capabilities = [\"pull\", \"resolve\"]\n", key)
			if t.path != "" {
				fmt.Fprintf(b, "  %s.override_path = true\n", key)
			}
		}
		return
	}
	for _, t := range chain {
		fmt.Fprintf(b, "\n[host.%s]\n", tomlString(mirrorURL(t)))
		b.WriteString("  capabilities = [\"pull\", \"resolve\"]\n")
		if t.path != "" {
			// The URL's path is then the API root itself, so requests go to
			// /v2/PATH/REPO/manifests/REF; without it containerd would append
			// /v2 after PATH.
			b.WriteString("  override_path = true\n")
		}
	}
}

// mirrorURL is the hosts.toml URL of a mirror.
func mirrorURL(t target) string {
	u := scheme(t.plain) + "://" + apiHost(t.host)
	if t.path != "" {
		u += "/v2/" + t.path
	}
	return u
}

// serverURL is the hosts.toml server of a source registry.
func serverURL(host string, plain bool) string {
	return scheme(plain) + "://" + apiHost(host)
}

// apiHost is the host serving the registry API of registry host h: Docker Hub
// answers on registry-1.docker.io, not docker.io.
func apiHost(h string) string {
	if h == "docker.io" {
		return "registry-1.docker.io"
	}
	return h
}

func scheme(plain bool) string {
	if plain {
		return "http"
	}
	return "https"
}

// containerdDir is the directory name containerd looks up for a registry
// host: the host[:port] itself (containerd also accepts host_port_).
func containerdDir(host string) string { return host }
