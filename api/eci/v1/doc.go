// Package v1 holds the ImageCache API of Alibaba Cloud ECI (group eci.alibabacloud.com, version v1),
// wire-compatible with ECI's CRD so existing ImageCache manifests apply unchanged; ferry realises it on
// ordinary nodes (docs/imagecache.md).
//
// +kubebuilder:object:generate=true
// +groupName=eci.alibabacloud.com
package v1
