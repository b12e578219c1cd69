// Package manifest rewrites the container images in Kubernetes YAML, for
// `detour rewrite -f`, and changes nothing else: the output is the input byte
// for byte except the image values that the rule set changes.
//
// # What is rewritten
//
// The image of every entry of containers, initContainers and
// ephemeralContainers in the pod spec of these kinds:
//
//	Pod, PodTemplate (template.spec), ReplicationController (spec.template.spec)
//	Deployment, StatefulSet, DaemonSet, ReplicaSet    (spec.template.spec)
//	Job (spec.template.spec), CronJob (spec.jobTemplate.spec.template.spec)
//	List and the typed lists (PodList, DeploymentList, ...): every item
//
// in any number of YAML documents separated by "---". An object whose
// apiVersion names another group (a custom resource that happens to be called
// Job) and every other kind pass through untouched, as do documents that are
// not Kubernetes objects at all. An object without apiVersion is taken by its
// kind alone. Each image is decided by [rules.Set.Rewrite], exactly as the
// webhook decides it: images under the escape prefix lose the prefix,
// images no rule matches are left alone, and so on. An image value that is
// not a string (null, a number, a custom tag) is left for Kubernetes to
// reject. The changes come back in input order, one per image field.
//
// # How the bytes are kept
//
// The input is parsed with gopkg.in/yaml.v3 only to find each image value's
// line, column and style. The new value is spliced into the original bytes at
// that position, after checking that the bytes there really are the value as
// parsed, in the same style: plain, 'single-quoted' or "double-quoted". A plain
// value stays plain unless the new image cannot be written plain (an IPv6
// mirror such as [fd00::1]:5000 would read as a list), in which case it is
// double-quoted. Comments, key order, indentation, quoting, CRLF line ends,
// document markers and trailing newlines are therefore kept as they were.
// Before returning, the output is parsed again and compared, node by node,
// with the input; any difference other than the new image values is an error,
// never a corrupted file.
//
// # What is refused
//
// Rewrite returns an *Error, and no output, when:
//   - a document is not valid YAML (the error names the document and line; a
//     file with Helm's {{ }} actions gets a hint to render it first), or an
//     image value is itself a template expression ([ErrTemplate]);
//   - an image to change is written as a block scalar (| or >) or spread over
//     several lines ([ErrScalarStyle]); an image that needs no change may be
//     written any way at all;
//   - an image to change is shared through a YAML anchor with something that
//     is not an image field ([ErrShared]).
//
// # Anchors and aliases
//
// An alias resolves to the very node it names, so rewriting an anchored value
// rewrites every alias of it. Rewrite allows that exactly when every use of
// the value is an image field: `image: &img nginx` in one container and
// `image: *img` in another are both rewritten, by editing the anchored value
// once (both Changes carry its line). An image field whose alias points at a
// value written somewhere else (`x-images: {web: &web nginx}`), or an anchored
// image that an alias also uses outside an image field (an env value), is
// refused with [ErrShared] when the image would change: editing the anchor
// would silently change that other value too. Merge keys (<<) are followed the
// same way when looking for containers and images.
//
// Rewrite is pure: it reads only its arguments and is safe for concurrent use.
package manifest
