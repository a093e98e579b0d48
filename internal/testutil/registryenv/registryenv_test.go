package registryenv_test

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferrypull/ferry/internal/testutil/registryenv"
)

func TestRegistries(t *testing.T) {
	users := map[string]string{"robot$ci": "pa$$word"}
	tests := []struct {
		name  string
		start func(testing.TB, registryenv.Options) *registryenv.Registry
		opts  registryenv.Options
	}{
		{"distribution plain", registryenv.StartDistribution, registryenv.Options{}},
		{"distribution tls+auth", registryenv.StartDistribution, registryenv.Options{TLS: true, Users: users}},
		{"docker-registry plain", registryenv.StartDocker, registryenv.Options{}},
		{"docker-registry tls+auth", registryenv.StartDocker, registryenv.Options{TLS: true, Users: users}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.start(t, tt.opts)
			img, err := random.Image(512, 2)
			if err != nil {
				t.Fatal(err)
			}
			user, pass := "", ""
			if len(tt.opts.Users) > 0 {
				if err := remote.Write(r.Ref(t, "team/app:v1"), img, r.Options(t.Context(), "", "")...); err == nil {
					t.Fatal("anonymous push succeeded against an htpasswd registry")
				}
				user, pass = "robot$ci", "pa$$word"
			}
			want := r.Push(t, "team/app:v1", img, user, pass)
			desc, err := remote.Head(r.Ref(t, "team/app:v1"), r.Options(t.Context(), user, pass)...)
			if err != nil {
				t.Fatalf("HEAD: %v", err)
			}
			if desc.Digest != want {
				t.Fatalf("digest %s, want %s", desc.Digest, want)
			}
		})
	}
}
