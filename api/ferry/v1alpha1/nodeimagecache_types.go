package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Per-node and per-image phases of a NodeImageCache report.
const (
	PhasePulling = "Pulling"
	PhaseReady   = "Ready"
	PhaseFailed  = "Failed"
)

// NodeImageCache is one node's report on the ImageCaches it serves. It is named after the node, written
// only by that node's node-agent and read by acr-credential-helper, which folds it into each
// ImageCache's status (docs/imagecache.md, "Per-node reports").
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=nimc,categories=ferry
// +kubebuilder:printcolumn:name="Caches",type=integer,JSONPath=`.status.cacheCount`
// +kubebuilder:printcolumn:name="Pinning",type=string,JSONPath=`.status.pinning`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type NodeImageCache struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Status NodeImageCacheStatus `json:"status,omitempty"`
}

// NodeImageCacheStatus is the node's report.
type NodeImageCacheStatus struct {
	// Caches are the ImageCaches this node serves (or still releases).
	// +optional
	// +listType=map
	// +listMapKey=name
	Caches []CacheReport `json:"caches,omitempty"`
	// CacheCount is len(caches), for the printer column.
	// +optional
	CacheCount int32 `json:"cacheCount,omitempty"`
	// Pinning says how cached images are kept from the kubelet's image GC: "label" (containerd's CRI
	// pinned label, honoured by the runtime) or "repull" (the runtime does not report pinned images; the
	// agent re-pulls an image that disappears while its cache lives).
	// +optional
	Pinning string `json:"pinning,omitempty"`
	// UpdateTime is when the agent last wrote this report.
	// +optional
	UpdateTime *metav1.Time `json:"updateTime,omitempty"`
}

// CacheReport is one ImageCache on this node.
type CacheReport struct {
	// Name of the ImageCache.
	Name string `json:"name"`
	// UID of the ImageCache, so a re-created cache of the same name is told apart.
	// +optional
	UID string `json:"uid,omitempty"`
	// ImageCacheID is the cache's imc-… id.
	// +optional
	ImageCacheID string `json:"imageCacheId,omitempty"`
	// Generation is the ImageCache generation the images belong to.
	Generation int64 `json:"generation"`
	// Phase is Pulling, Ready (every image present) or Failed (some image failed after retries).
	Phase string `json:"phase"`
	// Images reports each image.
	// +optional
	// +listType=map
	// +listMapKey=image
	Images []ImageReport `json:"images,omitempty"`
}

// ImageReport is one image on this node.
type ImageReport struct {
	// Image is the reference from spec.images.
	Image string `json:"image"`
	// Phase is Pulling, Ready or Failed.
	Phase string `json:"phase"`
	// ImageRef is the runtime's image id (config digest) once present.
	// +optional
	ImageRef string `json:"imageRef,omitempty"`
	// Digest is the repository digest the reference resolved to on this node.
	// +optional
	Digest string `json:"digest,omitempty"`
	// Size is the runtime's image size in bytes.
	// +optional
	Size int64 `json:"size,omitempty"`
	// Present means the image was already on the node before the cache asked for it; ferry then never
	// removes it on release.
	// +optional
	Present bool `json:"present,omitempty"`
	// Pinned means the runtime reports the image as pinned (kept from the kubelet's image GC).
	// +optional
	Pinned bool `json:"pinned,omitempty"`
	// Attempts counts pull attempts of the current generation.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`
	// Error is the last pull error (credentials redacted).
	// +optional
	Error string `json:"error,omitempty"`
	// CompletionTime is when the image became present.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
}

// NodeImageCacheList is a list of NodeImageCaches.
//
// +kubebuilder:object:root=true
type NodeImageCacheList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []NodeImageCache `json:"items"`
}
