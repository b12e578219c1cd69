// Package convert turns the configuration of the tools detour replaces into
// a detour config, for `detour config convert`, so that their users can
// switch in one step.
//
//   - [FromKetches] reads a ketches/registry-proxy config: the whole
//     ConfigMap (data."config.yaml"), a stream of manifests holding it, or
//     the bare config.yaml, with its keys enabled, proxies (registry host →
//     proxy host), includeNamespaces, excludeNamespaces, podSelector and
//     namespaceSelector.
//   - [FromContainerMirror] reads a container-mirror `image_mirrors` prefix
//     map: the Python dict as it stands in the webhook's Lambda code or its
//     CloudFormation template (`image_mirrors = { 'k8s.gcr.io/': '…/', … }`,
//     single or double quotes, comments, trailing commas), or a JSON object.
//
// The result is YAML text, never a struct: it carries comments wherever
// detour would behave differently from the source tool (ketches appended
// ":latest", matched only exact hosts and excluded kube-system only when
// told; container-mirror matched raw string prefixes and sent
// docker.io/library/nginx where its mirror has no such image; …), so the
// user reads the differences before switching. It always has `presets: []`:
// only the rules the user had are written, none of detour's built-in ones.
// Entries the source tool could never have matched are written as commented
// out rules with the reason, so the converted config behaves as the old one
// did and the intent is one edit away.
//
// Every result is checked before it is returned: it must parse with
// config.ParseBytes and compile. Malformed input is an *Error naming the
// line where it can.
//
// The package is pure: bytes in, bytes out.
package convert
