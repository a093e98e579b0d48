package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Phase is the lifecycle phase of an ImageCache; the values are ECI's (OpenAPI DescribeImageCaches Status).
// Only Ready is usable by Pods.
type Phase string

// The ECI phases.
const (
	// PhasePreparing: credentials, references and the size budget are being checked.
	PhasePreparing Phase = "Preparing"
	// PhaseCreating: node-agents are pulling the images onto the target nodes.
	PhaseCreating Phase = "Creating"
	// PhaseReady: every target node holds every image; Pods may use the cache.
	PhaseReady Phase = "Ready"
	// PhaseFailed: creation failed; status.reason and status.message say why. The cache expires 24 h later.
	PhaseFailed Phase = "Failed"
	// PhaseUpdating: the spec changed after creation; the new spec is being checked and pulled.
	PhaseUpdating Phase = "Updating"
	// PhaseUpdateFailed: the update failed; nodes keep what they cached before.
	PhaseUpdateFailed Phase = "UpdateFailed"
)

// ImageCacheSpec is ECI's ImageCache spec plus ferry's optional node selector.
type ImageCacheSpec struct {
	// Images to cache, as written in Pod specs ("nginx:1.25", "registry.example.com:5000/team/app@sha256:…").
	// An image whose registry host contains '*' (as in Alibaba's masked examples, "harbor***.pre.com") is
	// accepted by the schema but fails the cache with reason InvalidImage.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=512
	// +kubebuilder:validation:items:Pattern=`^((([a-zA-Z0-9*]|[a-zA-Z0-9*][a-zA-Z0-9*-]*[a-zA-Z0-9*])(\.([a-zA-Z0-9*]|[a-zA-Z0-9*][a-zA-Z0-9*-]*[a-zA-Z0-9*]))*|\[[a-fA-F0-9:]+\])(:[0-9]+)?/)?[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@[A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$`
	Images []string `json:"images"`

	// ImagePullSecrets lists the registry credentials as "namespace:secretName" entries
	// (kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg Secrets in any namespace).
	// +optional
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:MaxLength=317
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?:[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	ImagePullSecrets []string `json:"imagePullSecrets,omitempty"`

	// ImageCacheSize is the budget in GiB: the compressed size of the images (all layers and configs of the
	// target nodes' platform) must not exceed it, otherwise the cache fails. ECI: the size of the cache disk.
	// +optional
	// +kubebuilder:default=20
	// +kubebuilder:validation:Minimum=20
	// +kubebuilder:validation:Maximum=32768
	ImageCacheSize *int32 `json:"imageCacheSize,omitempty"`

	// RetentionDays is how long the cache lives after its creation; unset means forever. An expired cache is
	// deleted, and node-agents release its images.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65536
	RetentionDays *int32 `json:"retentionDays,omitempty"`

	// NodeSelector restricts the nodes that cache the images (ferry extension; ECI has no nodes). Unset:
	// every node that runs ferry's node-agent with pre-pull enabled.
	// +optional
	NodeSelector *metav1.LabelSelector `json:"nodeSelector,omitempty"`
}

// ImageCacheStatus is ECI's status plus ferry's per-image and per-node detail.
type ImageCacheStatus struct {
	// Phase is one of Preparing, Creating, Ready, Failed, Updating, UpdateFailed.
	// +optional
	// +kubebuilder:validation:Enum=Preparing;Creating;Ready;Failed;Updating;UpdateFailed
	Phase Phase `json:"phase,omitempty"`
	// Progress is ready nodes / target nodes as a percentage ("100%").
	// +optional
	Progress string `json:"progress,omitempty"`
	// ImageCacheID is the cache's stable id ("imc-…"), used by the Pod annotation k8s.aliyun.com/eci-imc-id.
	// +optional
	ImageCacheID string `json:"imageCacheId,omitempty"`
	// StartTime is when ferry started building the cache.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// LastUpdatedTime is the last phase or progress change.
	// +optional
	LastUpdatedTime *metav1.Time `json:"lastUpdatedTime,omitempty"`
	// LastUpdateTime is the spelling of Alibaba's Japanese documentation; ferry reads it when
	// lastUpdatedTime is absent and never writes it.
	// +optional
	LastUpdateTime *metav1.Time `json:"lastUpdateTime,omitempty"`
	// ExpireDateTime is when the cache is deleted: creation + retentionDays, or 24 h after a failure.
	// +optional
	ExpireDateTime *metav1.Time `json:"expireDateTime,omitempty"`
	// Events are the latest build events (at most 20), newest last.
	// +optional
	// +kubebuilder:validation:MaxItems=20
	Events []ImageCacheEvent `json:"events,omitempty"`

	// Reason is a CamelCase cause of Failed/UpdateFailed (InvalidImage, InvalidAnnotation,
	// CredentialsUnavailable, CredentialsRejected, ImageUnavailable, SizeExceeded, PullFailed).
	// +optional
	Reason string `json:"reason,omitempty"`
	// Message explains Reason, naming the image, Secret or node.
	// +optional
	Message string `json:"message,omitempty"`
	// ObservedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// CompressedSize is the sum of the images' compressed sizes in bytes (largest target platform).
	// +optional
	CompressedSize int64 `json:"compressedSize,omitempty"`
	// TargetNodes is the number of nodes that must hold the images.
	// +optional
	TargetNodes int32 `json:"targetNodes,omitempty"`
	// ReadyNodes is the number of target nodes that hold every image.
	// +optional
	ReadyNodes int32 `json:"readyNodes,omitempty"`
	// Images describes each image as resolved by the controller.
	// +optional
	// +listType=map
	// +listMapKey=image
	Images []ImageStatus `json:"images,omitempty"`
	// Nodes is the per-node detail (at most 256 nodes, those not ready first); node-agents' full reports are
	// the NodeImageCache objects (ferry.dev/v1alpha1) named after each node.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=256
	Nodes []NodeStatus `json:"nodes,omitempty"`
	// Conditions: Ready (status True exactly when phase is Ready).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ImageCacheEvent is one build event, shaped like ECI's DescribeImageCaches Event.
type ImageCacheEvent struct {
	// Type is Normal or Warning.
	Type string `json:"type"`
	// Name is the event's reason (ECI calls it Name).
	Name string `json:"name"`
	// Message describes the event.
	Message string `json:"message"`
	// Count is how often it happened in a row.
	Count int32 `json:"count"`
	// FirstTimestamp and LastTimestamp bound the repetitions.
	FirstTimestamp metav1.Time `json:"firstTimestamp"`
	LastTimestamp  metav1.Time `json:"lastTimestamp"`
}

// ImageStatus is one image of the cache as the controller resolved it.
type ImageStatus struct {
	// Image is the reference as written in spec.images.
	Image string `json:"image"`
	// Digest is the manifest (or index) digest the reference resolved to.
	// +optional
	Digest string `json:"digest,omitempty"`
	// CompressedSize is the compressed size in bytes (config and layers; largest target platform).
	// +optional
	CompressedSize int64 `json:"compressedSize,omitempty"`
}

// NodeStatus summarises one target node.
type NodeStatus struct {
	// Name of the node.
	Name string `json:"name"`
	// Phase is Pending (no report yet), Pulling, Ready or Failed.
	Phase string `json:"phase"`
	// Message names the failed images and their errors.
	// +optional
	Message string `json:"message,omitempty"`
}

// ImageCache is a set of images that ferry's node-agents pre-pull onto nodes and keep there while the cache
// lives (ECI's ImageCache; cluster-scoped).
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=imc,categories=ferry
// +kubebuilder:printcolumn:name="CacheId",type=string,JSONPath=`.status.imageCacheId`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Progress",type=string,JSONPath=`.status.progress`
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyNodes`
// +kubebuilder:printcolumn:name="Target",type=integer,JSONPath=`.status.targetNodes`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ImageCache struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ImageCacheSpec   `json:"spec"`
	Status ImageCacheStatus `json:"status,omitempty"`
}

// ImageCacheList is a list of ImageCaches.
//
// +kubebuilder:object:root=true
type ImageCacheList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ImageCache `json:"items"`
}

// Updated returns LastUpdatedTime, or the alternative spelling LastUpdateTime when only that is set.
func (s *ImageCacheStatus) Updated() *metav1.Time {
	if s.LastUpdatedTime != nil {
		return s.LastUpdatedTime
	}
	return s.LastUpdateTime
}
