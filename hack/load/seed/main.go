// Command seed pushes a small random image under each reference given, so
// that a load test's mirror registry holds the images its Pods ask for.
// Plain HTTP: it is meant for a registry on 127.0.0.1.
//
//	seed 127.0.0.1:5000/hub/library/busybox:1.36 ...
package main

import (
	"fmt"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func main() {
	for _, ref := range os.Args[1:] {
		if err := push(ref); err != nil {
			fmt.Fprintf(os.Stderr, "seed: %s: %v\n", ref, err)
			os.Exit(1)
		}
	}
}

func push(ref string) error {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return err
	}
	img, err := random.Image(1024, 1)
	if err != nil {
		return err
	}
	return remote.Write(r, img)
}
