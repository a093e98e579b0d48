// Package imagecache is the ImageCache (eci.alibabacloud.com/v1) controller of
// acr-credential-helper: it checks each cache's images and credentials, hands the pulls to
// node-agents (internal/nodeagent/prepull) and folds their per-node reports into the status,
// with ECI's phases.
//
// For each ImageCache:
//
//  1. A new generation (creation or a spec change) is Preparing (Updating when the cache had
//     been created before). The controller resolves the credentials of every image — the
//     Secrets of spec.imagePullSecrets ("namespace:name", read directly, any namespace) and
//     the ACR tokens the cache's k8s.aliyun.com/acr-instance-id(s) annotations ask for,
//     minted by a [Minter] with the acr-service-arns / acr-user-arns role chain — and reads
//     each image's manifest with them (honouring plain-http-registry / insecure-registry),
//     keeping the first credential the registry accepts. It sums the compressed sizes
//     (config and layers, each layer once, for the target nodes' platforms) and fails the
//     cache (SizeExceeded) when they exceed spec.imageCacheSize GiB.
//  2. It writes the verified credentials into the Secret
//     annotations.ImageCacheCredentialsSecret(imageCacheId) in its namespace (owned by the
//     cache) and publishes status.images for status.observedGeneration; the phase becomes
//     Creating (or stays Updating). ACR tokens are re-minted at half their lifetime while the
//     cache lives.
//  3. Target nodes are the Nodes matching spec.nodeSelector (all when unset) that run a
//     node-agent with pre-pull enabled (they have a NodeImageCache). progress is ready nodes /
//     target nodes; the cache is Ready once every target node holds every image, Failed
//     (UpdateFailed) when a node gave up on an image, naming the node, image and error.
//  4. status.expireDateTime is creationTimestamp + retentionDays, or 24 h after a failure;
//     an expired cache is deleted, and node-agents release its images.
//
// Phase changes append to status.events (at most 20) and emit a Kubernetes Event on the
// ImageCache. Secrets never reach the status, Events or logs.
//
// Metrics (controller-runtime registry):
//
//	ferry_imagecache_caches{phase}                       ImageCaches by phase
//	ferry_imagecache_ready_seconds                       creation (or spec change) → Ready
//	ferry_imagecache_failures_total{reason}              caches that failed, by reason
//	ferry_imagecache_compressed_bytes{imagecache}        compressed size of each cache's images
package imagecache
