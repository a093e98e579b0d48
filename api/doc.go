// Package api holds ferry's CRD types in its subpackages (eci/v1: ECI's ImageCache; ferry/v1alpha1:
// ferry's own kinds) and the test that keeps their generated deepcopy code and the CRDs in
// config/crd/bases in step with the Go types (`make generate`).
package api
