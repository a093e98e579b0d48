package annotations

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseInstanceIDs(t *testing.T) {
	tests := []struct {
		name    string
		value   string
		want    []InstanceRef
		wantErr string
	}{
		{name: "bare id", value: "cri-j36zhodptmyq", want: []InstanceRef{{InstanceID: "cri-j36zhodptmyq"}}},
		{name: "region prefix", value: "cn-beijing:cri-abc123", want: []InstanceRef{{RegionID: "cn-beijing", InstanceID: "cri-abc123"}}},
		{name: "list with spaces and empties", value: " cri-a1 , ,ap-southeast-1:cri-b2,", want: []InstanceRef{{InstanceID: "cri-a1"}, {RegionID: "ap-southeast-1", InstanceID: "cri-b2"}}},
		{name: "dedupe keeps first", value: "cri-a1,cri-a1, cn-beijing:cri-a1", want: []InstanceRef{{InstanceID: "cri-a1"}, {RegionID: "cn-beijing", InstanceID: "cri-a1"}}},
		{name: "empty", value: " , ", wantErr: "no entries"},
		{name: "not cri", value: "crx-abc", wantErr: `instance id "crx-abc"`},
		{name: "bad region", value: "Beijing:cri-abc", wantErr: `region "Beijing"`},
		{name: "two colons", value: "cn-beijing:cri-a:b", wantErr: `instance id "cri-a:b"`},
		{name: "masked id", value: "cri-j36z****", wantErr: "instance id"},
		{name: "too long", value: strings.Repeat("cri-a,", 3000), wantErr: "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseInstanceIDs(AcrInstanceIDs, tt.value)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), AcrInstanceIDs) {
					t.Fatalf("err %v must wrap ErrInvalid and name the annotation", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestInstancesUnion(t *testing.T) {
	got, err := Instances(map[string]string{
		AcrInstanceID:  "cri-one",
		AcrInstanceIDs: "cri-two, cri-one",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []InstanceRef{{InstanceID: "cri-one"}, {InstanceID: "cri-two"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if got, err := Instances(map[string]string{"other": "x"}); got != nil || err != nil {
		t.Fatalf("no annotation: got %v, %v", got, err)
	}
	_, err = Instances(map[string]string{AcrInstanceID: "nope"})
	if err == nil || !strings.Contains(err.Error(), AcrInstanceID) || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("err = %v, want it to name the annotation and value", err)
	}
}

func TestRoles(t *testing.T) {
	tests := []struct {
		name    string
		ann     map[string]string
		want    []string
		wantErr string
	}{
		{name: "none", ann: nil, want: []string{}},
		{name: "cross account", ann: map[string]string{
			AcrServiceARNs: "acs:ram::1609982529:role/role-assume",
			AcrUserARNs:    " acs:ram::1298452580:role/role-acr ",
		}, want: []string{"acs:ram::1609982529:role/role-assume", "acs:ram::1298452580:role/role-acr"}},
		{name: "user only", ann: map[string]string{AcrUserARNs: "acs:ram::12:role/r.a_b-c"}, want: []string{"acs:ram::12:role/r.a_b-c"}},
		{name: "list", ann: map[string]string{AcrServiceARNs: "acs:ram::1:role/a,acs:ram::2:role/b,acs:ram::1:role/a"}, want: []string{"acs:ram::1:role/a", "acs:ram::2:role/b"}},
		{name: "user arn not role", ann: map[string]string{AcrUserARNs: "acs:ram::123:user/bob"}, wantErr: AcrUserARNs},
		{name: "masked account", ann: map[string]string{AcrServiceARNs: "acs:ram::1609******:role/x"}, wantErr: "account id"},
		{name: "bad role name", ann: map[string]string{AcrServiceARNs: "acs:ram::1:role/a b"}, wantErr: "role name"},
		{name: "aws arn", ann: map[string]string{AcrServiceARNs: "arn:aws:iam::1:role/x"}, wantErr: "not a RAM role ARN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Roles(tt.ann)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Roles(), tt.want) {
				t.Fatalf("got %v, want %v", got.Roles(), tt.want)
			}
			if got.Empty() != (len(tt.want) == 0) {
				t.Fatalf("Empty() = %v for %v", got.Empty(), got)
			}
		})
	}
}

func TestParseRegistryHost(t *testing.T) {
	tests := []struct {
		in      string
		want    string // String() of the result
		wantErr string
	}{
		{in: "harbor.pre.com", want: "harbor.pre.com"},
		{in: "Harbor.Pre.COM:80", want: "harbor.pre.com:80"},
		{in: "192.168.1.5:5000", want: "192.168.1.5:5000"},
		{in: "192.168.1.5", want: "192.168.1.5"},
		{in: "[fd00::1]:5000", want: "[fd00::1]:5000"},
		{in: "[FD00:0::1]", want: "[fd00::1]"},
		{in: "fd00::1", want: "[fd00::1]"},
		{in: "harbor*.pre.com", want: "harbor*.pre.com"},
		{in: "localhost:5000", want: "localhost:5000"},
		{in: "http://reg.test.com", wantErr: "without a scheme"},
		{in: "reg.test.com/path", wantErr: "without a path"},
		{in: "reg.test.com:0", wantErr: "port"},
		{in: "reg.test.com:65536", wantErr: "port"},
		{in: "reg.test.com:050", wantErr: "port"},
		{in: "reg.test.com:", wantErr: "port"},
		{in: "fd00::1:5000:x", wantErr: "need brackets"},
		{in: "[fd00::1", wantErr: "unterminated"},
		{in: "[10.0.0.1]:80", wantErr: "not an IPv6"},
		{in: "[fd00::1]5000", wantErr: "unexpected"},
		{in: "under_score.com", wantErr: "may contain only"},
		{in: "-bad.com", wantErr: "starts or ends"},
		{in: "a..b", wantErr: "empty label"},
		{in: "*", wantErr: "concrete domain"},
		{in: "pre.*", wantErr: "concrete domain"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRegistryHost(PlainHTTPRegistry, tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), PlainHTTPRegistry) || !strings.Contains(err.Error(), tt.in) {
					t.Fatalf("err %q must name the annotation and the value", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tt.want {
				t.Fatalf("got %q, want %q", got.String(), tt.want)
			}
		})
	}
}

func TestRegistryHostMatches(t *testing.T) {
	tests := []struct {
		entry, imageHost string
		want             bool
	}{
		{"reg.test.com", "reg.test.com", true},
		{"reg.test.com", "reg.test.com:80", false},
		{"reg.test.com:80", "reg.test.com", false},
		{"reg.test.com:80", "reg.test.com:80", true},
		{"harbor*.pre.com", "harbor-01.pre.com", true},
		{"harbor*.pre.com", "harbor.pre.com", true},
		{"harbor*.pre.com", "a.harbor.pre.com", false},
		{"harbor*.pre.com", "harbor-01.pre.com:5000", false},
		{"*.pre.com:5000", "x.pre.com:5000", true},
		{"192.168.1.5:5000", "192.168.1.5:5000", true},
		{"[fd00::1]:5000", "[fd00:0::1]:5000", true},
	}
	for _, tt := range tests {
		h, err := ParseRegistryHost(InsecureRegistry, tt.entry)
		if err != nil {
			t.Fatal(err)
		}
		if got := h.Matches(tt.imageHost); got != tt.want {
			t.Errorf("%q.Matches(%q) = %v, want %v", tt.entry, tt.imageHost, got, tt.want)
		}
	}
}

func TestImageHost(t *testing.T) {
	for ref, want := range map[string]string{
		"nginx":                                "docker.io",
		"library/nginx:1.0":                    "docker.io",
		"localhost/x":                          "localhost",
		"localhost:5000/x":                     "localhost:5000",
		"Harbor.Pre.com/test/nginx:latest":     "harbor.pre.com",
		"192.168.1.5:5000/test/nginx@sha256:0": "192.168.1.5:5000",
		"[fd00::1]:5000/x":                     "[fd00::1]:5000",
	} {
		if got := ImageHost(ref); got != want {
			t.Errorf("ImageHost(%q) = %q, want %q", ref, got, want)
		}
	}
}

func TestRegistryRequests(t *testing.T) {
	ann := map[string]string{
		PlainHTTPRegistry: "harbor*.pre.com, 192.168.1.5:5000",
		InsecureRegistry:  "reg.test.com:80,192.168.1.5:5000",
	}
	images := []string{"harbor-a.pre.com/x:1", "harbor-b.pre.com:5000/y", "docker.io/library/busybox"}
	got, err := RegistryRequests(ann, images)
	if err != nil {
		t.Fatal(err)
	}
	want := []RegistryRequest{
		{Annotation: PlainHTTPRegistry, Host: "harbor-a.pre.com", Mode: ModePlainHTTP},
		{Annotation: PlainHTTPRegistry, Host: "192.168.1.5:5000", Mode: ModePlainHTTP},
		{Annotation: InsecureRegistry, Host: "reg.test.com:80", Mode: ModeInsecure},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if !HasRegistryAnnotations(ann) || HasRegistryAnnotations(map[string]string{AcrInstanceID: "cri-a"}) {
		t.Fatal("HasRegistryAnnotations wrong")
	}
	if _, err := RegistryRequests(map[string]string{InsecureRegistry: "https://x"}, nil); err == nil || !strings.Contains(err.Error(), InsecureRegistry) {
		t.Fatalf("err = %v, want one naming %s", err, InsecureRegistry)
	}
}
