package admission

import (
	"errors"
	"fmt"
	"sync"
)

// The parts of an AdmissionReview that detour reads. Everything else in the
// request — userInfo, options, every Pod field but these — is checked for
// syntax and skipped.

type review struct {
	apiVersion string
	kind       string
	request    *request
}

type request struct {
	uid         string
	kind        groupKind
	resource    string
	subResource string
	name        string
	namespace   string
	operation   string
	dryRun      bool
	object      *pod // nil when absent or null
	oldObject   *pod
}

type groupKind struct {
	group, version, kind string
}

type pod struct {
	hasMetadata    bool // metadata is an object
	name           string
	generateName   string
	namespace      string
	skip           bool // label SkipLabel is "true"
	hasAnnotations bool // metadata.annotations is an object, maybe empty
	// Detour's own annotations, as found; ok says whether present.
	originalImages, mirrorChoice       string
	hasOriginalImages, hasMirrorChoice bool
	lists                              [numLists][]container
}

type container struct {
	name  string
	image string
}

// The three container lists of a Pod spec, in the order detour patches them.
const (
	initContainers = iota
	containers
	ephemeralContainers
	numLists
)

// listNames are the JSON names of the lists, which also prefix the keys of
// the original-images annotation.
var listNames = [numLists]string{"initContainers", "containers", "ephemeralContainers"}

// listFields name a list's fields in type errors.
var listFields = func() (out [numLists]struct{ list, elem, name, image string }) {
	for l, n := range listNames {
		out[l].list = "spec." + n
		out[l].elem = "spec." + n + "[]"
		out[l].name = "spec." + n + "[].name"
		out[l].image = "spec." + n + "[].image"
	}
	return out
}()

// state is what one review decodes into and builds with. Reviews take one
// from a pool and give it back when done, so the request, the Pods and their
// container lists, the candidates and the annotation entries reuse the
// memory of earlier reviews: allocations are what drives the garbage
// collector, and under load its cycles cost more than the review itself.
// Nothing in a state may be referenced after the review that used it: the
// strings decoded are copies, and what Review returns is built fresh or in
// the caller's buffer.
type state struct {
	d        decoder
	rv       review
	req      request
	obj, old pod
	cands    []candidate
	entries  []entry // the original-images annotation, merged
	choices  []entry // the mirror-choice annotation, merged
	buf      []byte  // annotation values are built here
	// Availability checking: the distinct images checked, their chains
	// (flat, cut at ends) and the picks.
	inputs []string
	flat   []string
	ends   []int
	chains [][]string
	picks  []pick
}

var states = sync.Pool{New: func() any { return new(state) }}

func getState() *state { return states.Get().(*state) }

// putState returns st to the pool, cleared of the strings of its review so
// the pool does not keep them alive.
func putState(st *state) {
	st.d = decoder{}
	st.rv = review{}
	st.req = request{}
	st.obj.reset()
	st.old.reset()
	clear(st.cands[:cap(st.cands)])
	clear(st.entries[:cap(st.entries)])
	clear(st.choices[:cap(st.choices)])
	clear(st.inputs[:cap(st.inputs)])
	clear(st.flat[:cap(st.flat)])
	clear(st.chains[:cap(st.chains)])
	clear(st.picks[:cap(st.picks)])
	if cap(st.buf) > 64<<10 {
		st.buf = nil // one huge annotation is not kept
	}
	states.Put(st)
}

// reset empties p, keeping the memory of its container lists.
func (p *pod) reset() {
	lists := p.lists
	for l := range lists {
		clear(lists[l])
		lists[l] = lists[l][:0]
	}
	*p = pod{lists: lists}
}

// decodeReview reads an AdmissionReview into st. Syntax errors and type
// errors in the envelope are returned; a type error inside object or
// oldObject is returned as objErr, which matters only for Pods.
func decodeReview(body []byte, st *state) (objErr error, err error) {
	st.d = decoder{buf: body}
	d := &st.d
	rv := &st.rv
	if c := d.peek(); c != '{' {
		if err := d.skip(); err != nil {
			return nil, err
		}
		if err := d.end(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("the body is %s, not an AdmissionReview object", kindOf(c))
	}
	var typeErr error // first type error outside the objects
	note := func() {
		if typeErr == nil && d.typeErr != nil {
			typeErr = d.typeErr
		}
		d.typeErr = nil
	}
	_, err = d.object("", func(key []byte) error {
		var err error
		switch string(key) {
		case "apiVersion":
			rv.apiVersion, err = d.word("apiVersion")
		case "kind":
			rv.kind, err = d.word("kind")
		case "request":
			rv.request = nil
			req := &st.req
			*req = request{}
			st.obj.reset()
			st.old.reset()
			var ok bool
			ok, err = d.object("request", func(key []byte) error {
				return decodeRequest(st, key, &objErr, note)
			})
			if ok {
				rv.request = req
			}
		default:
			err = d.skip()
		}
		note()
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	return objErr, typeErr
}

func decodeRequest(st *state, key []byte, objErr *error, note func()) error {
	d, req := &st.d, &st.req
	var err error
	switch string(key) {
	case "uid":
		req.uid, err = d.str("request.uid")
	case "kind":
		req.kind = groupKind{}
		_, err = d.object("request.kind", func(key []byte) error {
			var err error
			switch string(key) {
			case "group":
				req.kind.group, err = d.word("request.kind.group")
			case "version":
				req.kind.version, err = d.word("request.kind.version")
			case "kind":
				req.kind.kind, err = d.word("request.kind.kind")
			default:
				err = d.skip()
			}
			return err
		})
	case "resource":
		req.resource = ""
		_, err = d.object("request.resource", func(key []byte) error {
			if string(key) == "resource" {
				var err error
				req.resource, err = d.word("request.resource.resource")
				return err
			}
			return d.skip()
		})
	case "subResource":
		req.subResource, err = d.word("request.subResource")
	case "name":
		req.name, err = d.str("request.name")
	case "namespace":
		req.namespace, err = d.str("request.namespace")
	case "operation":
		req.operation, err = d.word("request.operation")
	case "dryRun":
		req.dryRun, err = d.boolean("request.dryRun")
	case "object", "oldObject":
		old := string(key) == "oldObject"
		d.prefix = "request.object."
		if old {
			d.prefix = "request.oldObject."
		}
		p := &st.obj
		if old {
			p = &st.old
		}
		p.reset()
		var ok bool
		ok, err = d.object("", func(key []byte) error { return decodePod(d, p, key) })
		d.prefix = ""
		if d.typeErr != nil {
			if *objErr == nil {
				*objErr = d.typeErr
			}
			d.typeErr = nil
		}
		if !ok {
			p = nil
		}
		if old {
			req.oldObject = p
		} else {
			req.object = p
		}
	default:
		err = d.skip()
	}
	note()
	return err
}

func decodePod(d *decoder, p *pod, key []byte) error {
	switch string(key) {
	case "metadata":
		// A repeated key's last value wins, as in a generic decode.
		*p = pod{lists: p.lists}
		ok, err := d.object("metadata", func(key []byte) error { return decodeMeta(d, p, key) })
		p.hasMetadata = ok
		return err
	case "spec":
		for l := range p.lists {
			clear(p.lists[l])
			p.lists[l] = p.lists[l][:0]
		}
		_, err := d.object("spec", func(key []byte) error {
			for l, name := range listNames {
				if string(key) == name {
					return decodeList(d, p, l)
				}
			}
			return d.skip()
		})
		return err
	}
	return d.skip()
}

func decodeMeta(d *decoder, p *pod, key []byte) error {
	var err error
	switch string(key) {
	case "name":
		p.name, err = d.str("metadata.name")
	case "generateName":
		p.generateName, err = d.str("metadata.generateName")
	case "namespace":
		p.namespace, err = d.str("metadata.namespace")
	case "labels":
		p.skip = false
		_, err = d.object("metadata.labels", func(key []byte) error {
			v, err := d.strBytes("metadata.labels")
			if string(key) == SkipLabel {
				p.skip = string(v) == "true"
			}
			return err
		})
	case "annotations":
		p.originalImages, p.hasOriginalImages = "", false
		p.mirrorChoice, p.hasMirrorChoice = "", false
		p.hasAnnotations, err = d.object("metadata.annotations", func(key []byte) error {
			switch string(key) {
			case OriginalImagesAnnotation:
				v, err := d.str("metadata.annotations")
				p.originalImages, p.hasOriginalImages = v, true
				return err
			case MirrorChoiceAnnotation:
				v, err := d.str("metadata.annotations")
				p.mirrorChoice, p.hasMirrorChoice = v, true
				return err
			}
			// A value is still checked to be a string: annotations are a
			// map[string]string and anything else is no Pod.
			if c := d.peek(); c != '"' && c != 'n' {
				return d.mismatch("metadata.annotations", "a string")
			}
			return d.skip()
		})
	default:
		err = d.skip()
	}
	return err
}

func decodeList(d *decoder, p *pod, l int) error {
	list := p.lists[l][:0]
	f := &listFields[l]
	_, err := d.array(f.list, func(i int) error {
		var c container
		_, err := d.object(f.elem, func(key []byte) error {
			var err error
			switch string(key) {
			case "name":
				c.name, err = d.str(f.name)
			case "image":
				c.image, err = d.str(f.image)
			default:
				err = d.skip()
			}
			return err
		})
		list = append(list, c)
		return err
	})
	p.lists[l] = list
	return err
}

// decodeStringMap reads a JSON object of strings, such as the value of the
// original-images annotation, calling f for each member in order.
func decodeStringMap(s string, f func(k, v string)) error {
	d := &decoder{buf: []byte(s)}
	_, err := d.object("", func(key []byte) error {
		v, err := d.str("")
		f(string(key), v)
		return err
	})
	if err == nil {
		err = d.end()
	}
	if err == nil && d.typeErr != nil {
		err = errors.New("not an object of strings")
	}
	return err
}
