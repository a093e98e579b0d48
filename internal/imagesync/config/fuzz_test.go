package config

import "testing"

func FuzzParseAuth(f *testing.F) {
	f.Add([]byte(`{"quay.io": {"username": "robot$x", "password": "${P}", "insecure": true}}`), false)
	f.Add([]byte("a.io:\n  username: u\n  password: p\n"), true)
	f.Add([]byte(`{"a": null, "": {}}`), false)
	f.Fuzz(func(t *testing.T, data []byte, yaml bool) {
		format := JSON
		if yaml {
			format = YAML
		}
		af, err := ParseAuth(data, format, true)
		if err != nil {
			return
		}
		for k := range af {
			af.Lookup(k, "x/y")
			af.Lookup("r.io", k)
		}
	})
}

func FuzzParseImages(f *testing.F) {
	f.Add([]byte(`{"quay.io/a/b:v1,v2": ["q.io/c/d:r1,r2", "q.io/e/f"], "h.io/p/*": "d.io/m"}`), false)
	f.Add([]byte("\"q.io/a:/^v[0-9]+$/\": {destination: d.io/x, latest: 2, semver: '>=1'}\n"), true)
	f.Fuzz(func(t *testing.T, data []byte, yaml bool) {
		format := JSON
		if yaml {
			format = YAML
		}
		es, err := ParseImages(data, format)
		if err != nil {
			return
		}
		for _, e := range es {
			r, err := ParseRule(e, Defaults{Registry: "d.io", Namespace: "ns"})
			if err != nil {
				continue
			}
			r.Pairs(r.SelectTags([]string{"v1", "1.2.3", "latest"}))
		}
	})
}

func FuzzParseRule(f *testing.F) {
	for _, s := range [][2]string{
		{"h.io:5000/p/app:v1,v2", "d.io/m/app:r1,r2"},
		{"h.io/p/app:/a+/", "d.io/m/app"},
		{"h.io/p/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "d.io/m/app:x"},
		{"nginx", ""},
		{"h.io/ns/*", "d.io/m"},
		{"h.io:5000", "d.io:1/:"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, src, dst string) {
		r, err := ParseRule(Entry{Source: src, Destination: dst}, Defaults{Registry: "d.io", Namespace: "ns"})
		if err != nil {
			return
		}
		ps := r.Pairs(r.SelectTags([]string{"v1", "a"}))
		for _, p := range ps {
			if p.SrcID == "" || p.DstID == "" {
				t.Fatalf("empty id in %+v for %q -> %q", p, src, dst)
			}
		}
		if r.Src.Namespace {
			r.ForRepository("ns/app")
		}
	})
}
