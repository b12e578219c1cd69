package rules_test

import (
	"fmt"

	"github.com/detourhq/detour/internal/rules"
)

func ExampleSet_Rewrite() {
	set, err := rules.Compile([]rules.Rule{
		{From: "docker.io", To: []string{"docker.m.daocloud.io"}},
		{From: "registry.k8s.io", To: []string{"k8s.m.daocloud.io"}},
		{From: "k8s.gcr.io", To: []string{"registry.aliyuncs.com/google_containers"}},
	}, rules.DefaultEscapePrefix)
	if err != nil {
		panic(err)
	}
	for _, img := range []string{
		"nginx",                       // a Docker Hub official image: library/ is spelled out
		"k8s.gcr.io/coredns:1.3.1",    // path prefix replaced
		"direct.to/busybox:latest",    // escaped: the prefix goes, nothing else changes
		"localhost:5000/app:1",        // no rule: byte-identical
		"k8s.m.daocloud.io/pause:3.9", // already under a mirror: a second pass changes nothing
	} {
		d := set.Rewrite(img)
		fmt.Printf("%-28s -> %s (%v)\n", img, d.Image, d.Reason)
	}
	// Output:
	// nginx                        -> docker.m.daocloud.io/library/nginx (rewritten)
	// k8s.gcr.io/coredns:1.3.1     -> registry.aliyuncs.com/google_containers/coredns:1.3.1 (rewritten)
	// direct.to/busybox:latest     -> busybox:latest (escaped)
	// localhost:5000/app:1         -> localhost:5000/app:1 (no-match)
	// k8s.m.daocloud.io/pause:3.9  -> k8s.m.daocloud.io/pause:3.9 (already-mirrored)
}

func ExampleDecision_Chain() {
	set, _ := rules.Compile([]rules.Rule{
		{From: "quay.io", To: []string{"quay.m.daocloud.io", "quay.mirror.corp"}},
	}, "")
	d := set.Rewrite("quay.io/prometheus/node-exporter:v1.7.0")
	fmt.Println(d.Image)
	fmt.Println(d.Chain())
	// Output:
	// quay.m.daocloud.io/prometheus/node-exporter:v1.7.0
	// [quay.m.daocloud.io/prometheus/node-exporter:v1.7.0 quay.mirror.corp/prometheus/node-exporter:v1.7.0]
}

func ExampleCompile_errors() {
	_, err := rules.Compile([]rules.Rule{
		{From: "docker.io", To: []string{"mirror.corp"}},
		{From: "Docker.IO", To: []string{"other.corp"}},
		{From: "quay.io", To: []string{"not a mirror"}},
	}, "")
	fmt.Println(err)
	// Output:
	// from "Docker.IO": another rule has the same from
	// to "not a mirror": not a valid registry host[:port][/path]
}
