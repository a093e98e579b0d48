// Package prepull is node-agent's ImageCache pre-puller: it pulls the images of every
// ImageCache (eci.alibabacloud.com/v1) that targets its node through the node's CRI runtime
// (PullImage on containerd's socket, with the credentials the controller resolved), keeps them
// while the cache lives and releases them when it is deleted, expires or fails. No Job Pods.
//
// The contract with the ImageCache controller in acr-credential-helper
// (internal/controller/imagecache; docs/imagecache.md):
//
//   - The agent acts on a cache whose status.phase is Creating, Updating, Ready or UpdateFailed
//     and pulls status.images (the set the controller checked for status.observedGeneration),
//     never spec.images directly. While the phase is Preparing it keeps what it has; any other
//     phase (Failed), a deleted cache and one whose spec.nodeSelector no longer matches the
//     Node's labels are released.
//   - Credentials come from the Secret annotations.ImageCacheCredentialsSecret(imageCacheId) in
//     the credentials namespace, whose ferry.dev/imagecache-uid and -generation annotations must
//     match the cache; its .dockerconfigjson has one "host/repository" entry per image.
//   - The k8s.aliyun.com/plain-http-registry and insecure-registry annotations of the cache are
//     written to containerd's hosts.toml through hostsconfig (source "imagecache", the same
//     allow-listed writer as for Pods) before the first pull; a host outside
//     --allowed-registries fails that cache's images on this node with a message naming it.
//   - The agent reports into the NodeImageCache (ferry.dev/v1alpha1) named after its node, per
//     cache and per image (phase, runtime image id, repository digest, size, attempts, error),
//     and labels its Node imagecache.ferry.dev/<imageCacheId>=ready once a cache is complete.
//
// Pulls run at most Parallelism at a time, one per image reference however many caches want
// it. An image already present when a cache first asks for it counts as done (Present) and is
// never removed by ferry. Failed pulls are retried MaxAttempts times with exponential backoff;
// then the image is Failed for that generation.
//
// Keeping images from the kubelet's image GC: containerd ≥ 1.7 honours the label
// io.cri-containerd.pinned=pinned (CRI Image.pinned), which kubelet GC skips; containerd 1.6 —
// Debian 12's, the rig's — does not know it and cannot be asked through CRI to set labels. The
// agent therefore reports Pinning "repull": every Resync it checks each cached image and pulls
// again an image that GC (or anyone) removed while its cache lives. Per-image Pinned shows what
// the runtime reports.
//
// Release removes an image only when ferry pulled it, no other live cache on the node wants it
// or an image with the same id, and no container uses it (containerd's CRI RemoveImage drops
// every reference of the image).
//
// Metrics (controller-runtime registry):
//
//	ferry_node_agent_prepull_pulls_total{result}       pulled, present, failed
//	ferry_node_agent_prepull_pull_duration_seconds     CRI PullImage latency of successful pulls
//	ferry_node_agent_prepull_pulled_bytes_total        runtime size of the images pulled
//	ferry_node_agent_prepull_released_total            images removed on release
//	ferry_node_agent_prepull_images{phase}             cached images on this node by phase
package prepull
