// Package containerdcheck holds tests, in a module of their own, that read
// the files detour's hosts package generates with the runtimes' own parsers:
// containerd 1.6's remotes/docker/config (the hosts.toml loader behind
// `ctr --hosts-dir` and the CRI plugin's config_path) and containers/image's
// sysregistriesv2 (the registries.conf loader of CRI-O, podman and skopeo).
// Both bring large dependency trees, which the main module does not take on.
//
// Run: cd internal/hosts/containerdcheck && go test ./...
package containerdcheck
