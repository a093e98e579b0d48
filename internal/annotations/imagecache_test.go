package annotations

import "testing"

func TestImageRepository(t *testing.T) {
	for _, tt := range []struct{ ref, want string }{
		{"nginx", "docker.io/library/nginx"},
		{"nginx:1.25", "docker.io/library/nginx"},
		{"team/app:v1", "docker.io/team/app"},
		{"docker.io/library/busybox:latest", "docker.io/library/busybox"},
		{"Reg.Example.com:5000/a/b:c", "reg.example.com:5000/a/b"},
		{"localhost/x@sha256:0123", "localhost/x"},
		{"127.0.0.1:5000/team/hello:v1@sha256:abcd", "127.0.0.1:5000/team/hello"},
		{"[::1]:5000/x:y", "[::1]:5000/x"},
	} {
		if got := ImageRepository(tt.ref); got != tt.want {
			t.Errorf("ImageRepository(%q) = %q, want %q", tt.ref, got, tt.want)
		}
	}
}
