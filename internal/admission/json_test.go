package admission

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// The decoder is held to encoding/json: it must accept exactly the documents
// json.Valid accepts, and read the same values as a generic decode does
// (a generic decode, because like the Kubernetes API machinery and unlike
// encoding/json's struct decoding it matches keys case-sensitively).

func FuzzDecodeReview(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.json")
	seeds = append(seeds, "../../hack/load/body.json")
	for _, path := range seeds {
		if strings.HasSuffix(path, ".golden.json") {
			continue
		}
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		``, ` `, `{}`, `[]`, `null`, `1`, `-0.5e+3`, `"x"`, `{"a":}`, `{"a" 1}`, `{"a":1,}`, `[1,]`, `01`, `1.`, `-`, `1e`,
		`"\u00e9\ud83d\ude00\ud800x\udc00"`, "\"\xff\"", `"\q"`, `{"request":{"object":{"spec":{"containers":[null,{"image":1}]}}}}`,
		`{"request":{"kind":{"kind":"Pod"},"object":{"metadata":{"labels":{"detour.dev/skip":"true"},"annotations":null}}}}`,
		`{"Request":{"UID":"x"},"request":{"uid":"y"},"request":{"uid":"z"}}`,
		strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rv, objErr, err := decode(t, body)
		valid := json.Valid(body)
		var syn *SyntaxError
		if valid == errors.As(err, &syn) {
			t.Fatalf("json.Valid = %v, decodeReview error = %v", valid, err)
		}
		if !valid {
			return
		}
		if hasDuplicateKeys(t, body) {
			// A map cannot show which of two values had the wrong type.
			return
		}
		want, wantObjErr, wantErr := referenceDecode(t, body)
		if (err != nil) != wantErr || (objErr != nil) != wantObjErr {
			t.Fatalf("errors: decodeReview (%v, %v), reference (%v, %v)", objErr, err, wantObjErr, wantErr)
		}
		if err != nil {
			return
		}
		if diff := cmp.Diff(want, rv, cmp.AllowUnexported(review{}, request{}, groupKind{}, pod{}, container{}), cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("decodeReview differs from a generic decode (-want +got):\n%s", diff)
		}
	})
}

// hasDuplicateKeys reports whether an object in the valid document body
// has a key twice.
func hasDuplicateKeys(t *testing.T, body []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(body))
	type frame struct {
		keys  map[string]bool
		isObj bool
		key   bool // the next token of this object is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return false
		}
		if err != nil {
			t.Fatalf("json.Decoder.Token on a valid document: %v", err)
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.isObj && top.key {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].isObj {
					stack[len(stack)-1].key = true
				}
				continue
			}
			k := tok.(string)
			if top.keys[k] {
				return true
			}
			top.keys[k] = true
			top.key = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{keys: map[string]bool{}, isObj: true, key: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// A value ended: the enclosing object expects a key next.
		if len(stack) > 0 && stack[len(stack)-1].isObj {
			stack[len(stack)-1].key = true
		}
	}
}

// referenceDecode reads the same fields as decodeReview from a generic
// decode. It reports whether the envelope, or the objects, had a value of the
// wrong type.
func referenceDecode(t *testing.T, body []byte) (rv review, objErr, err bool) {
	var doc any
	if e := json.Unmarshal(body, &doc); e != nil {
		t.Fatalf("json.Valid accepted what json.Unmarshal refuses: %v", e)
	}
	top, ok := doc.(map[string]any)
	if !ok {
		return rv, false, true
	}
	bad := false
	str := func(v any, bad *bool) string {
		switch v := v.(type) {
		case string:
			return v
		case nil:
		default:
			*bad = true
		}
		return ""
	}
	obj := func(v any, bad *bool) (map[string]any, bool) {
		switch v := v.(type) {
		case map[string]any:
			return v, true
		case nil:
		default:
			*bad = true
		}
		return nil, false
	}
	rv.apiVersion = str(top["apiVersion"], &bad)
	rv.kind = str(top["kind"], &bad)
	if r, ok := obj(top["request"], &bad); ok {
		req := &request{}
		rv.request = req
		req.uid = str(r["uid"], &bad)
		if k, ok := obj(r["kind"], &bad); ok {
			req.kind = groupKind{str(k["group"], &bad), str(k["version"], &bad), str(k["kind"], &bad)}
		}
		if k, ok := obj(r["resource"], &bad); ok {
			req.resource = str(k["resource"], &bad)
		}
		req.subResource = str(r["subResource"], &bad)
		req.name = str(r["name"], &bad)
		req.namespace = str(r["namespace"], &bad)
		req.operation = str(r["operation"], &bad)
		switch v := r["dryRun"].(type) {
		case bool:
			req.dryRun = v
		case nil:
		default:
			bad = true
		}
		req.object = referencePod(r["object"], &objErr, str, obj)
		req.oldObject = referencePod(r["oldObject"], &objErr, str, obj)
	}
	return rv, objErr, bad
}

func referencePod(v any, bad *bool, str func(any, *bool) string, obj func(any, *bool) (map[string]any, bool)) *pod {
	o, ok := obj(v, bad)
	if !ok {
		return nil
	}
	p := &pod{}
	if m, ok := obj(o["metadata"], bad); ok {
		p.hasMetadata = true
		p.name = str(m["name"], bad)
		p.generateName = str(m["generateName"], bad)
		p.namespace = str(m["namespace"], bad)
		if l, ok := obj(m["labels"], bad); ok {
			for k, v := range l {
				s := str(v, bad)
				if k == SkipLabel {
					p.skip = s == "true"
				}
			}
		}
		if a, ok := obj(m["annotations"], bad); ok {
			p.hasAnnotations = true
			for k, v := range a {
				s := str(v, bad)
				switch k {
				case OriginalImagesAnnotation:
					p.originalImages, p.hasOriginalImages = s, true
				case MirrorChoiceAnnotation:
					p.mirrorChoice, p.hasMirrorChoice = s, true
				}
			}
		}
	}
	if s, ok := obj(o["spec"], bad); ok {
		for l, name := range listNames {
			switch list := s[name].(type) {
			case []any:
				p.lists[l] = []container{}
				for _, e := range list {
					var c container
					if m, ok := obj(e, bad); ok {
						c = container{name: str(m["name"], bad), image: str(m["image"], bad)}
					}
					p.lists[l] = append(p.lists[l], c)
				}
			case nil:
			default:
				*bad = true
			}
		}
	}
	return p
}

func TestDecodeKeysAreCaseSensitiveAndTheLastWins(t *testing.T) {
	t.Parallel()
	body := `{"apiVersion":"x","APIVERSION":"y","kind":"a","kind":"AdmissionReview","request":{"uid":"1",` +
		`"object":{"spec":{"containers":[{"name":"c","image":"one","Image":"two"}],"containers":[{"name":"d","image":"thr\u0065e"}]}}}}`
	rv, _, err := decode(t, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if rv.apiVersion != "x" || rv.kind != "AdmissionReview" {
		t.Errorf("apiVersion %q kind %q, want x AdmissionReview", rv.apiVersion, rv.kind)
	}
	got := rv.request.object.lists[containers]
	if want := []container{{"d", "three"}}; !cmp.Equal(want, got, cmp.AllowUnexported(container{})) {
		t.Errorf("containers %+v, want %+v", got, want)
	}
}

func TestDecodeStrings(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		`"plain"`, `"caf\u00e9"`, `"\ud83d\ude00"`, `"\ud800"`, `"\ud800\u0041"`, `"\udc00\ud800"`, "\"\xff\xfe\"",
		`"a\"b\\c\/d\b\f\n\r\t"`, `"\ud83d\ud83d\ude00"`, `"\ud800\\u0041"`, "\"\u2028\"",
	} {
		var want string
		if err := json.Unmarshal([]byte(s), &want); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		d := &decoder{buf: []byte(s)}
		got, err := d.str("")
		if err != nil || got != want {
			t.Errorf("decoding %s = %q, %v; encoding/json reads %q", s, got, err, want)
		}
	}
}
