// Package imagebuild builds ferry's container images: a minimal base (CA bundle, passwd and group
// for the nonroot user 65532) made with go-containerregistry, and one multi-arch image per binary
// built by ko on top of it, written to an OCI layout and optionally pushed to a registry.
//
// ko (v0.19.1) reads its base only from a registry or a Docker daemon. The base is therefore served
// by an in-process registry reached through a loopback CONNECT proxy under the fixed name
// [BaseHost], so the base reference ko records in every manifest
// (org.opencontainers.image.base.name) is the same on every build and machine, which keeps the
// index digests reproducible. Nothing leaves the machine for the base: the proxy answers
// [BaseHost] itself and tunnels every other host (the Go module proxy, a destination registry)
// unchanged.
package imagebuild
