package emulator_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ferrypull/ferry/internal/emulator/world"
	"github.com/ferrypull/ferry/internal/testutil/emulatorenv"
)

// TestInternetWhitelist dials the Hangzhou instance from different loopback
// source addresses after restricting its internet endpoint to 127.0.0.2.
func TestInternetWhitelist(t *testing.T) {
	env := emulatorenv.Start(t, emulatorenv.Options{Mutate: func(w *world.World) {
		for _, a := range w.Accounts {
			for _, inst := range a.Instances {
				if inst.ID == world.DemoInstanceAHangzhou {
					inst.InternetEndpoint.Whitelist = []string{"127.0.0.2/32"}
				}
			}
		}
	}})
	hz := env.Instance(t, world.DemoInstanceAHangzhou)
	if len(hz.Whitelist) != 1 || hz.Whitelist[0] != "127.0.0.2/32" {
		t.Fatalf("info whitelist = %v", hz.Whitelist)
	}
	auth := &authn.Basic{Username: "acr-puller", Password: env.User(t, world.DemoAccountA, "acr-puller").Password}
	tests := []struct {
		name       string
		domain     string // an advertised domain (hz.Domains[0] internet, [1] VPC)
		src        string
		wantStatus int
	}{
		{name: "whitelisted source, internet domain", domain: hz.Domains[0], src: "127.0.0.2"},
		{name: "other source, internet domain", domain: hz.Domains[0], src: "127.0.0.3", wantStatus: http.StatusForbidden},
		{name: "other source, VPC domain", domain: hz.Domains[1], src: "127.0.0.3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref, err := name.ParseReference(tt.domain + "/apps/hello:v1")
			if err != nil {
				t.Fatal(err)
			}
			_, err = remote.Head(ref, remote.WithAuth(auth), remote.WithTransport(env.TransportFrom(tt.src)), remote.WithContext(t.Context()))
			if tt.wantStatus == 0 {
				if err != nil {
					t.Fatalf("want success, got %v", err)
				}
				return
			}
			var te *transport.Error
			if !errors.As(err, &te) || te.StatusCode != tt.wantStatus || te.Errors[0].Code != "DENIED" {
				t.Fatalf("want %d DENIED, got %v", tt.wantStatus, err)
			}
		})
	}
}
