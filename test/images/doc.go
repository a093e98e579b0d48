// Package images tests `make images` (hack/images, internal/imagebuild): the container images are
// reproducible, multi-arch, static, non-root, labelled, carry SBOMs and push to real registries.
// The build runs twice, so the test is heavy: it is skipped with -short.
package images
