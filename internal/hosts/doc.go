// Package hosts turns detour's rule set into node-level mirror configuration,
// for nodes whose runtime pulls images the webhook never sees (static Pods,
// the pause image) or clusters that run no webhook at all.
//
// [Render] is pure: from a compiled [rules.Set] and a [Format] it returns the
// files to install (relative path → content), notes for the user and the
// rules the format cannot express. No rule is dropped silently: each one, or
// each mirror of its chain, that a format cannot carry is listed in
// [Result.Unexpressible] with the reason. [Write] is the thin I/O shell that
// installs the files atomically and backs up the ones it replaces.
//
// The formats and what they can say:
//
//   - [Containerd]: the config_path layout, one DIR/<registry>/hosts.toml per
//     source registry with a whole-registry rule. The mirrors of the chain are
//     [host."…"] entries in chain order with capabilities pull and resolve;
//     server is the registry itself (https://registry-1.docker.io for Docker
//     Hub), which containerd tries last. A mirror with a path prefix is the
//     URL https://HOST/v2/PATH with override_path = true, so
//     registry.aliyuncs.com/google_containers serves k8s.gcr.io/pause as
//     /v2/google_containers/pause/manifests/…. A "*" rule becomes
//     _default/hosts.toml when its mirrors name no "{registry}". hosts.toml
//     maps whole registries: a rule whose from has a path is unexpressible
//     unless the registry's own rule already gives the same mapping.
//   - [Docker]: daemon.json with registry-mirrors. dockerd applies them to
//     Docker Hub only and takes a bare scheme://host[:port], so only the
//     path-less mirrors of the Docker Hub rule (or, without one, of the "*"
//     rule) are expressible.
//   - [CRIO]: registries.conf version 2 (containers-registries.conf(5)): one
//     [[registry]] per rule with prefix and location equal to from, and one
//     [[registry.mirror]] per mirror. Prefixes with paths and mirrors with paths
//     are both expressible; "*" is not.
//
// Limits of the formats themselves, which tests hold them to (see the
// containerdcheck module, which reads the output with containerd's and
// containers/image's own loaders):
//
//   - Both runtimes look a registry up by its host exactly as the image names
//     it. detour's rules fold case, ":443" and registry-1.docker.io into the
//     canonical host; an image written Quay.IO/x or quay.io:443/x finds no
//     quay.io entry on the node.
//   - containerd 1.x reads hosts.toml with go-toml v1, which cannot parse a
//     [host."…"] header holding an IPv6 host; a chain with one is written as
//     dotted keys under [host], which it reads in order.
//   - containers/image has no IPv6 hosts in its reference grammar: IPv6
//     registries and mirrors are unexpressible for CRI-O.
//   - With a _default/hosts.toml, images already on a mirror are asked of the
//     "*" mirrors first too (containerd then falls back to their own
//     registry); detour's webhook leaves them alone.
//
// Mirrors on loopback hosts and hosts listed in [Options.Insecure] are reached
// over plain HTTP (http:// in hosts.toml and daemon.json, insecure = true in
// registries.conf). Output is deterministic: files, rules and registries are
// sorted, and every file that can hold a comment starts with one naming the
// config it was generated from.
package hosts
