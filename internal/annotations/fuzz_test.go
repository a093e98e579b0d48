package annotations

import (
	"errors"
	"strings"
	"testing"
)

func FuzzParseInstanceIDs(f *testing.F) {
	for _, s := range []string{"cri-abc", "cn-beijing:cri-abc, cri-x", " , ", "a:b:c", "cn-:cri-", strings.Repeat("cri-a,", 70)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		refs, err := ParseInstanceIDs(AcrInstanceIDs, v)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		seen := map[InstanceRef]bool{}
		for _, r := range refs {
			if seen[r] {
				t.Fatalf("duplicate %v", r)
			}
			seen[r] = true
			// Round trip: the rendered form parses back to itself.
			again, err := ParseInstanceIDs(AcrInstanceIDs, r.String())
			if err != nil || len(again) != 1 || again[0] != r {
				t.Fatalf("round trip of %q: %v %v", r, again, err)
			}
		}
	})
}

func FuzzParseRoleARNs(f *testing.F) {
	for _, s := range []string{"acs:ram::1:role/a", "acs:ram::1:role/a,acs:ram::2:role/b", "acs:ram:::role/", "acs:ram::1:role/a:role/b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		arns, err := ParseRoleARNs(AcrUserARNs, v)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		for _, a := range arns {
			if strings.ContainsAny(a, ", \t") || !strings.HasPrefix(a, "acs:ram::") {
				t.Fatalf("accepted malformed ARN %q", a)
			}
		}
	})
}

func FuzzParseRegistryHosts(f *testing.F) {
	for _, s := range []string{"harbor*.pre.com,192.168.0.1:5000,reg.test.com:80", "[fd00::1]:5000", "fd00::1", "[::ffff:1.2.3.4]", "a:b", "x.y:99999"} {
		f.Add(s, "x.y.z:5000/img")
	}
	f.Fuzz(func(t *testing.T, v, image string) {
		hosts, err := ParseRegistryHosts(PlainHTTPRegistry, v)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		for _, h := range hosts {
			s := h.String()
			if strings.ContainsAny(s, "/ ,\t") {
				t.Fatalf("accepted host renders as %q", s)
			}
			again, err := ParseRegistryHost(PlainHTTPRegistry, s)
			if err != nil || again != h {
				t.Fatalf("round trip of %q: %+v, %v", s, again, err)
			}
			if !h.Wildcard() && !h.Matches(s) {
				t.Fatalf("%q does not match itself", s)
			}
		}
		reqs, err := RegistryRequests(map[string]string{PlainHTTPRegistry: v, InsecureRegistry: v}, []string{image})
		if err != nil {
			t.Fatalf("RegistryRequests failed on a value ParseRegistryHosts accepted: %v", err)
		}
		for _, r := range reqs {
			if strings.Contains(r.Host, "*") {
				t.Fatalf("wildcard %q leaked into a concrete request", r.Host)
			}
		}
	})
}
