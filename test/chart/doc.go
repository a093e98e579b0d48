// Package chart tests charts/ferry with the real Helm 4 and Helm 3: lint, the values schema,
// the production objects (digest pinning, Pod Security, PodDisruptionBudget, topology spread,
// NetworkPolicy, monitoring only with its CRDs, the image-syncer CronJob) and an install of every
// optional part into a real apiserver.
package chart
