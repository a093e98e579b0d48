// Package v1alpha1 holds ferry's own API (group ferry.dev): NodeImageCache, the per-node pre-pull report
// that each node-agent writes for the ImageCaches it serves.
//
// +kubebuilder:object:generate=true
// +groupName=ferry.dev
package v1alpha1
