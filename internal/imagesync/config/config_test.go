package config

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestFormatFromPath(t *testing.T) {
	for _, tc := range []struct {
		path string
		want Format
		err  bool
	}{
		{"a.json", JSON, false}, {"a.yaml", YAML, false}, {"a.yml", YAML, false},
		{"a.JSON", 0, true}, {"a.txt", 0, true}, {"a", 0, true},
	} {
		got, err := FormatFromPath(tc.path)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("%s: got %v, %v", tc.path, got, err)
		}
	}
}

func TestExpandValue(t *testing.T) {
	t.Setenv("DOCKER_USER", "alice")
	t.Setenv("DOCKER_PASS", "s3cr$t")
	for _, tc := range []struct{ in, want string }{
		{"$DOCKER_USER", "alice"},
		{"${DOCKER_USER}", "alice"},
		{"$DOCKER_PASS", "s3cr$t"},
		{"robot$proj+ci", "robot$proj+ci"},
		{"pa$$word", "pa$$word"},
		{`aaa\$bbb`, `aaa\$bbb`},
		{"x-${DOCKER_USER}-y", "x-alice-y"},
		{"$UNSET_VAR_FERRY", "$UNSET_VAR_FERRY"},
		{"${UNSET_VAR_FERRY}", "${UNSET_VAR_FERRY}"},
		{"$oauthtoken", "$oauthtoken"},
	} {
		if got := ExpandValue(tc.in); got != tc.want {
			t.Errorf("ExpandValue(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseAuth(t *testing.T) {
	t.Setenv("H_PASS", "fromenv")
	yamlDoc := `
harbor.local:8080:
  username: robot$ci
  password: pa$$w0rd
  insecure: true
harbor.local:8080/proj:
  username: "${H_USER_UNSET}"
  password: "$H_PASS"
literal.io:
  username: u
  password: "$H_PASS"
  disableexpandenv: true
acr.example.com:
  accessKeyId: AKID
  accessKeySecret: SECRET
  instanceId: cri-x
`
	f, err := ParseAuth([]byte(yamlDoc), YAML, true)
	if err != nil {
		t.Fatal(err)
	}
	if a := f["harbor.local:8080"]; a.Username != "robot$ci" || a.Password != "pa$$w0rd" || !a.Insecure {
		t.Errorf("harbor entry mangled: %+v", a)
	}
	if a := f["harbor.local:8080/proj"]; a.Password != "fromenv" {
		t.Errorf("env not expanded: %q", a.Password)
	}
	if a := f["literal.io"]; a.Password != "$H_PASS" {
		t.Errorf("disableexpandenv ignored: %q", a.Password)
	}
	if a := f["acr.example.com"]; !a.HasACR() || strings.Contains(a.String(), "SECRET") {
		t.Errorf("acr entry: %s", a)
	}
	if s := f["harbor.local:8080"].String(); strings.Contains(s, "pa$$w0rd") {
		t.Errorf("String leaks the password: %s", s)
	}

	for _, tc := range []struct{ name, doc, wantErr string }{
		{"bad type", `{"r.io": {"username": 5}}`, `"username"`},
		{"not a map", `[1,2]`, "auth file"},
		{"secret not echoed", `{"r.io": {"password": ["topsecret"]}}`, `"password"`},
	} {
		_, err := ParseAuth([]byte(tc.doc), JSON, true)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "topsecret") {
			t.Errorf("%s: err = %v", tc.name, err)
		}
	}
}

func TestLookupLongestPrefix(t *testing.T) {
	f := AuthFile{
		"quay.io":              {Username: "reg"},
		"quay.io/coreos":       {Username: "ns"},
		"quay.io/coreos/deep":  {Username: "deep"},
		"quay.io/coreos/exact": {Username: "exact"},
		"docker.io":            {Username: "hub"},
		"quay.io/core":         {Username: "notaboundary"},
		"trailing.io/ns/":      {Username: "trailing"},
	}
	for _, tc := range []struct{ reg, repo, want string }{
		{"quay.io", "coreos/kube-rbac-proxy", "ns"},
		{"quay.io", "coreos/deep/x", "deep"},
		{"quay.io", "coreos/exact", "exact"}, // upstream panics here
		{"quay.io", "corefoo/app", "reg"},
		{"index.docker.io", "library/nginx", "hub"},
		{"trailing.io", "ns/app", "trailing"},
		{"other.io", "x/y", ""},
	} {
		_, a, ok := f.Lookup(tc.reg, tc.repo)
		if a.Username != tc.want || ok != (tc.want != "") {
			t.Errorf("Lookup(%s, %s) = %q, want %q", tc.reg, tc.repo, a.Username, tc.want)
		}
	}
}

func TestParseImagesShapes(t *testing.T) {
	doc := `
quay.io/coreos/kube-rbac-proxy: quay.io/ruohe/kube-rbac-proxy
"quay.io/coreos/kube-rbac-proxy:v1.1":
  - quay.io/ruohe/kube-rbac-proxy1
  - quay.io/ruohe/kube-rbac-proxy2
  - quay.io/ruohe/kube-rbac-proxy1
"h.io/p/app":
  destination: a.io/ns/app
  exclude: ["-rc"]
  latest: 2
`
	es, err := ParseImages([]byte(doc), YAML)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 4 {
		t.Fatalf("got %d entries: %+v", len(es), es)
	}
	if es[0].Source != "h.io/p/app" || es[0].Filter.Latest != 2 || es[0].Filter.Exclude[0] != "-rc" {
		t.Errorf("object entry: %+v", es[0])
	}
	for _, bad := range []string{`{"a.io/x": []}`, `{"a.io/x": 5}`, `{"a.io/x": {"exclude": ["x"]}}`, `{"a.io/x": {"destination": "b.io/y", "latest": -1}}`, `[]`} {
		if _, err := ParseImages([]byte(bad), JSON); err == nil {
			t.Errorf("ParseImages(%s) accepted", bad)
		}
	}
}

func TestParseLegacySeed004(t *testing.T) {
	doc := `{
    "auth": {
        "harbor.myk8s.paas.com:32080": {"username": "admin", "password": "xx$xx", "insecure": true},
        "ruohe-test-registry.cn-shanghai.cr.aliyuncs.com": {"username": "ruohehhy", "password": "$HOME"}
    },
    "images": {"harbor.myk8s.paas.com:32080/library/nginx": ""}
}`
	l, err := ParseLegacy([]byte(doc), JSON)
	if err != nil {
		t.Fatal(err)
	}
	if p := l.Auth["ruohe-test-registry.cn-shanghai.cr.aliyuncs.com"].Password; p != "$HOME" {
		t.Errorf("--config must not expand env, got %q", p)
	}
	if _, err := ParseRule(l.Images[0], Defaults{}); err == nil || !strings.Contains(err.Error(), "empty destination is not supported for source: harbor.myk8s.paas.com:32080/library/nginx") {
		t.Errorf("empty destination without defaults: %v", err)
	}
	r, err := ParseRule(l.Images[0], Defaults{Registry: "registry.cn-beijing.aliyuncs.com", Namespace: "image-syncer"})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Dst.Name(); got != "registry.cn-beijing.aliyuncs.com/image-syncer/nginx" {
		t.Errorf("legacy destination = %s", got)
	}
}

func TestParseRule(t *testing.T) {
	t.Setenv("DST_NS", "mirror")
	d64 := "sha256:" + strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name, src, dst string
		want           string // fmt of pairs for tags [v1 v2 a1]
		err            string
	}{
		{"all tags", "h.io:5000/p/app", "d.io/m/app", "v1>v1 v2>v2 a1>a1", ""},
		{"one tag", "h.io:5000/p/app:v1", "d.io/m/app", "v1>v1", ""},
		{"list", "h.io:5000/p/app:v1,v2", "d.io/m/app", "v1>v1 v2>v2", ""},
		{"renamed", "h.io:5000/p/app:v1,v2", "d.io/m/app:r1,r2", "v1>r1 v2>r2", ""},
		{"count mismatch", "h.io:5000/p/app:v1,v2", "d.io/m/app:r1", "", "not matched"},
		{"regex unanchored", "h.io:5000/p/app:/a/", "d.io/m/app", "a1>a1", ""},
		{"regex anchored", "h.io:5000/p/app:/^v/", "d.io/m/app", "v1>v1 v2>v2", ""},
		{"bad regex", "h.io:5000/p/app:/(/", "d.io/m/app", "", "invalid regex"},
		{"digest", "h.io:5000/p/app@" + d64, "d.io/m/app", d64 + ">" + d64, ""},
		{"digest to tag", "h.io:5000/p/app@" + d64, "d.io/m/app:pinned", d64 + ">pinned", ""},
		{"digest mismatch", "h.io:5000/p/app@" + d64, "d.io/m/app@sha256:" + strings.Repeat("cd", 32), "", "digest"},
		{"bad digest", "h.io:5000/p/app@sha256:zz", "d.io/m/app", "", "invalid digest"},
		{"env dest", "h.io:5000/p/app:v1", "d.io/$DST_NS/app", "v1>v1", ""},
		{"hub normalisation", "nginx:1.25", "h.io:8080/lib/nginx", "1.25>1.25", ""},
		{"bad tag", "h.io:5000/p/app:v1,-x", "d.io/m/app", "", "invalid tag"},
		{"uppercase repo", "h.io:5000/P/App", "d.io/m/app", "", "invalid repository"},
		{"empty dest", "h.io:5000/p/app", "", "", "empty destination"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseRule(Entry{Source: tc.src, Destination: tc.dst}, Defaults{})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range r.Pairs(r.SelectTags([]string{"v1", "v2", "a1"})) {
				got = append(got, p.SrcID+">"+p.DstID)
			}
			// all-tags pairs come sorted; compare as sets
			if strings.Join(slices.Sorted(slices.Values(got)), " ") != strings.Join(slices.Sorted(slices.Values(strings.Fields(tc.want))), " ") {
				t.Errorf("pairs = %v, want %s", got, tc.want)
			}
		})
	}
	r, _ := ParseRule(Entry{Source: "nginx:1.25", Destination: "d.io/$DST_NS/app"}, Defaults{})
	if r.Src.Name() != "index.docker.io/library/nginx" || r.Dst.Name() != "d.io/mirror/app" {
		t.Errorf("names: %s -> %s", r.Src.Name(), r.Dst.Name())
	}
}

func TestFilters(t *testing.T) {
	tags := []string{"1.0.0", "1.2.0", "1.10.0", "2.0.0-rc1", "latest", "dev", "0.9.0"}
	for _, tc := range []struct {
		name string
		spec FilterSpec
		want string
	}{
		{"exclude", FilterSpec{Exclude: []string{"rc", "^dev$"}}, "0.9.0 1.0.0 1.10.0 1.2.0 latest"},
		{"semver", FilterSpec{Semver: ">=1.1.0 <2.0.0-0"}, "1.10.0 1.2.0"},
		{"latest", FilterSpec{Latest: 2, Exclude: []string{"rc"}}, "1.10.0 1.2.0"},
		{"latest non-semver tail", FilterSpec{Latest: 7}, "0.9.0 1.0.0 1.10.0 1.2.0 2.0.0-rc1 dev latest"},
	} {
		r, err := ParseRule(Entry{Source: "h.io/p/app", Destination: "d.io/p/app", Filter: tc.spec}, Defaults{})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(r.SelectTags(tags), " "); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	if _, err := ParseRule(Entry{Source: "h.io/p/app", Destination: "d.io/p/app", Filter: FilterSpec{Semver: ">= one point two"}}, Defaults{}); err == nil || !strings.Contains(err.Error(), "semver") {
		t.Errorf("bad semver accepted: %v", err)
	}
}

func TestNamespaceRule(t *testing.T) {
	r, err := ParseRule(Entry{Source: "h.io:5000/library/*", Destination: "d.io/mirror"}, Defaults{})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Src.Namespace || r.Src.Repository != "library" {
		t.Fatalf("src = %+v", r.Src)
	}
	nr, ok := r.ForRepository("library/team/app")
	if !ok || nr.Dst.Name() != "d.io/mirror/team/app" || nr.Src.Name() != "h.io:5000/library/team/app" {
		t.Errorf("narrowed = %s -> %s (%v)", nr.Src.Name(), nr.Dst.Name(), ok)
	}
	if _, ok := r.ForRepository("other/app"); ok {
		t.Error("repository outside the namespace accepted")
	}
	if _, err := ParseRule(Entry{Source: "h.io:5000/library/*:v1", Destination: "d.io/m"}, Defaults{}); err == nil {
		t.Error("wildcard with a tag accepted")
	}
}

// TestConfigMistakes: mistakes that used to pass silently (a rule dropped, a filter ignored and
// every tag copied) or with a misleading error, and hostile files (alias bombs, deep nesting,
// huge files): each is an error naming the key or the limit.
func TestConfigMistakes(t *testing.T) {
	bomb := "a: &a [x,x,x,x,x,x,x,x,x]\n"
	for i, c := range "bcdefghij" {
		prev := string("abcdefghij"[i])
		bomb += fmt.Sprintf("%c: &%c [*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s,*%s]\n", c, c, prev, prev, prev, prev, prev, prev, prev, prev, prev)
	}
	for _, tc := range []struct {
		name, doc string
		format    Format
		auth      bool
		want      string
	}{
		{"duplicate source json", `{"h.io/p/a": "d.io/m/a", "h.io/p/b": "d.io/m/b", "h.io/p/a": "d.io/m/c"}`, JSON, false, `key "h.io/p/a" is listed twice`},
		{"duplicate source yaml", "h.io/p/a: d.io/m/a\nh.io/p/a: d.io/m/c\n", YAML, false, `key "h.io/p/a" is listed twice`},
		{"duplicate key in an object", `{"h.io/p/a": {"destination": "d.io/m/a", "destination": "d.io/m/b"}}`, JSON, false, `key "destination" is listed twice in "h.io/p/a"`},
		{"duplicate registry in the auth file", "r.io: {username: a, password: b}\nr.io: {username: c, password: d}\n", YAML, true, `key "r.io" is listed twice`},
		{"misspelt exclude", `{"h.io/p/a": {"destination": "d.io/m/a", "exlude": ["-rc"]}}`, JSON, false, `unknown key "exlude" (did you mean "exclude"?)`},
		{"misspelt latest", "h.io/p/a: {destination: d.io/m/a, latst: 3}\n", YAML, false, `unknown key "latst" (did you mean "latest"?)`},
		{"exclude as a string", "h.io/p/a: {destination: d.io/m/a, exclude: -rc}\n", YAML, false, `source "h.io/p/a": exclude: must be a list of regular expressions (exclude: ["-rc"]), got a string "-rc"`},
		{"latest as a string", `{"h.io/p/a": {"destination": "d.io/m/a", "latest": "3"}}`, JSON, false, `latest: must be a whole number, got a string "3"`},
		{"latest negative", `{"h.io/p/a": {"destination": "d.io/m/a", "latest": -1}}`, JSON, false, `latest: must be >= 0, got -1`},
		{"destination as a number", `{"h.io/p/a": {"destination": 5}}`, JSON, false, `destination: must be a string, got a number 5`},
		{"alias bomb", bomb, YAML, false, "excessive aliasing"},
		{"alias bomb in the auth file", bomb, YAML, true, "excessive aliasing"},
		{"deep json", strings.Repeat("[", 200000) + strings.Repeat("]", 200000), JSON, false, "exceeded max depth"},
		{"deep yaml", strings.Repeat("[", 200000) + strings.Repeat("]", 200000), YAML, true, "exceeded max depth"},
		{"huge", `{"h.io/p/a": "` + strings.Repeat("x", MaxFileSize) + `"}`, JSON, false, "more than the 32 MiB limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.auth {
				_, err = ParseAuth([]byte(tc.doc), tc.format, false)
			} else {
				_, err = ParseImages([]byte(tc.doc), tc.format)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// the object form still works, keys case-insensitively, destination before destinations
	es, err := ParseImages([]byte(`{"h.io/p/a": {"Destinations": ["d.io/m/b"], "destination": "d.io/m/a", "EXCLUDE": ["rc"], "latest": 2, "semver": ">=1"}}`), JSON)
	if err != nil || len(es) != 2 || es[0].Destination != "d.io/m/a" || es[1].Filter.Latest != 2 || es[1].Filter.Exclude[0] != "rc" || es[0].Filter.Semver != ">=1" {
		t.Errorf("object form: %+v, %v", es, err)
	}
}

// TestRepositoryPathGrammar: go-containerregistry accepts "..", "." and empty components in a
// repository (it checks characters only); a POST to "m/../../x" leaves /v2/<name>/.
func TestRepositoryPathGrammar(t *testing.T) {
	for _, dst := range []string{"d.io/m/../../x", "d.io/m/./x", "d.io/m//x", "d.io/-m/x", "d.io/m/x.", "d.io/..", "d.io/m/x_/y"} {
		if _, err := ParseRule(Entry{Source: "h.io/p/app:v1", Destination: dst}, Defaults{}); err == nil || !strings.Contains(err.Error(), "is not a valid repository name component") {
			t.Errorf("destination %q: err = %v", dst, err)
		}
	}
	if _, err := ParseRule(Entry{Source: "h.io/p/../app:v1", Destination: "d.io/m/app"}, Defaults{}); err == nil {
		t.Error(`source "h.io/p/../app" accepted`)
	}
	if _, err := ParseRule(Entry{Source: "h.io/p/../*", Destination: "d.io/m"}, Defaults{}); err == nil {
		t.Error(`namespace "p/.." accepted`)
	}
	for _, ok := range []string{"d.io/m/a.b/c_d/e__f/g--h/x-y", "d.io/0/1", "d.io:5000/m/app:v1"} {
		if _, err := ParseRule(Entry{Source: "h.io/p/app:v1", Destination: ok}, Defaults{}); err != nil {
			t.Errorf("destination %q refused: %v", ok, err)
		}
	}
	r, _ := ParseRule(Entry{Source: "h.io/p/*", Destination: "d.io/m"}, Defaults{})
	if _, ok := r.ForRepository("p/../../x"); ok {
		t.Error("a catalog entry with .. was narrowed")
	}
}
