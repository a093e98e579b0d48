// Package schedulinggate releases the ferry.dev/registry-config scheduling gate that the Pod webhook
// (internal/webhook/pod) sets on Pods with k8s.aliyun.com/plain-http-registry or insecure-registry
// annotations.
//
// [GateReconciler] releases the gate once every node running node-agent (Nodes that carry the
// node-agent.ferry.dev/registry-hosts annotation and whose Ready condition is not Unknown) reports
// each of the Pod's hosts as ready, refused or failed. Only then can the scheduler bind the Pod, so
// the kubelet never pulls before hosts.toml exists on whichever node it lands on. [CacheByObject]
// gives the cache restrictions it needs (labelled Pods, slim Nodes).
//
// Metrics (controller-runtime registry):
//
//	ferry_pod_gate_released_total{outcome}   ready, refused, no_agent, invalid
package schedulinggate
