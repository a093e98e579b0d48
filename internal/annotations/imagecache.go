package annotations

import "strings"

// The ECI Pod annotations that select an ImageCache (docs/imagecache.md), read by ferry's
// ImageCache Pod webhook at Pod creation.
const (
	// EciImcID names one cache explicitly ("imc-…"); the Pod is refused unless the cache is Ready.
	EciImcID = "k8s.aliyun.com/eci-imc-id"
	// EciImageSnapshotID is the legacy name of EciImcID.
	EciImageSnapshotID = "k8s.aliyun.com/eci-image-snapshot-id"
	// EciAutoImc asks for an automatic match ("true"/"false").
	EciAutoImc = "k8s.aliyun.com/eci-auto-imc"
	// EciImageCache is the legacy name of EciAutoImc.
	EciImageCache = "k8s.aliyun.com/eci-image-cache"
	// ImcPerfectMatch: match only a cache that holds every image of the Pod.
	ImcPerfectMatch = "k8s.aliyun.com/imc-perfect-match"
	// ImcMatchCountRequest: the minimum number of the Pod's images a cache must hold.
	ImcMatchCountRequest = "k8s.aliyun.com/imc-match-count-request"
	// EciMatchedImageCache is set by ferry: the cache the Pod was matched with.
	EciMatchedImageCache = "k8s.aliyun.com/eci-matched-image-cache"
)

// ferry's own keys between the ImageCache controller (acr-credential-helper), node-agent and
// the ImageCache Pod webhook.
const (
	// ImageCacheNodeLabelPrefix + imageCacheId is the Node label node-agent sets to
	// ImageCacheNodeLabelReady once every image of that cache is on the node.
	ImageCacheNodeLabelPrefix = "imagecache.ferry.dev/"
	// ImageCacheNodeLabelReady is the value of a complete cache's Node label.
	ImageCacheNodeLabelReady = "ready"
	// ImageCacheCredentialsLabel marks the credentials Secret of an ImageCache (value: the
	// imageCacheId), written by the controller and read by node-agents.
	ImageCacheCredentialsLabel = "ferry.dev/imagecache"
	// ImageCacheUIDAnnotation on a credentials Secret is the UID of its ImageCache.
	ImageCacheUIDAnnotation = "ferry.dev/imagecache-uid"
	// ImageCacheGenerationAnnotation on a credentials Secret is the ImageCache generation its
	// credentials were resolved for.
	ImageCacheGenerationAnnotation = "ferry.dev/imagecache-generation"
)

// ImageCacheNodeLabel returns the Node label key for a cache id.
func ImageCacheNodeLabel(imageCacheID string) string { return ImageCacheNodeLabelPrefix + imageCacheID }

// ImageCacheCredentialsSecret returns the name of a cache's credentials Secret. Its
// .dockerconfigjson holds one entry per image, keyed "host/repository", with the credential the
// controller verified for that image.
func ImageCacheCredentialsSecret(imageCacheID string) string { return "ferry-" + imageCacheID }

// ImageRepository returns "host/repository" of an image reference as containerd normalises it
// ("nginx:1" → "docker.io/library/nginx"; the host lower-cased, tag and digest dropped): the key
// of an image's entry in a cache's credentials Secret.
func ImageRepository(ref string) string {
	host := ImageHost(ref)
	rest := ref
	if first, after, ok := strings.Cut(ref, "/"); ok && strings.ToLower(first) == host {
		rest = after
	}
	if i := strings.Index(rest, "@"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndex(rest, ":"); i >= 0 {
		rest = rest[:i]
	}
	if host == "docker.io" && !strings.Contains(rest, "/") {
		rest = "library/" + rest
	}
	return host + "/" + rest
}
