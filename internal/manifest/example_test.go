package manifest_test

import (
	"fmt"
	"os"

	"github.com/detourhq/detour/internal/manifest"
	"github.com/detourhq/detour/internal/rules"
)

func ExampleRewrite() {
	set, err := rules.Compile([]rules.Rule{
		{From: "docker.io", To: []string{"docker.m.daocloud.io"}},
		{From: "registry.k8s.io", To: []string{"k8s.m.daocloud.io"}},
	}, rules.DefaultEscapePrefix)
	if err != nil {
		panic(err)
	}
	in := []byte(`# web tier
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  template:
    spec:
      initContainers:
      - name: wait
        image: "registry.k8s.io/pause:3.9"   # quotes are kept
      containers:
      - name: web
        image: nginx:1.25                    # so are comments
      - name: tools
        image: direct.to/busybox:1.36        # escaped: pulled from the source
`)
	out, changes, err := manifest.Rewrite(in, set)
	if err != nil {
		panic(err)
	}
	os.Stdout.Write(out)
	for _, c := range changes {
		fmt.Println(c)
	}
	// Output:
	// # web tier
	// apiVersion: apps/v1
	// kind: Deployment
	// metadata: {name: web}
	// spec:
	//   template:
	//     spec:
	//       initContainers:
	//       - name: wait
	//         image: "k8s.m.daocloud.io/pause:3.9"   # quotes are kept
	//       containers:
	//       - name: web
	//         image: docker.m.daocloud.io/library/nginx:1.25                    # so are comments
	//       - name: tools
	//         image: busybox:1.36        # escaped: pulled from the source
	// doc 1 Deployment/web spec.template.spec.initContainers[0].image: registry.k8s.io/pause:3.9 -> k8s.m.daocloud.io/pause:3.9
	// doc 1 Deployment/web spec.template.spec.containers[0].image: nginx:1.25 -> docker.m.daocloud.io/library/nginx:1.25
	// doc 1 Deployment/web spec.template.spec.containers[1].image: direct.to/busybox:1.36 -> busybox:1.36
}
