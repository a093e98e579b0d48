// Package registry is ferry's shared registry I/O plumbing on go-containerregistry: per-host
// transport settings (plain HTTP, skip-verify, CA files), a bounded retry transport with exponential
// backoff, jitter and Retry-After, a per-registry concurrency limit, and keychains (static
// credentials, tokens, credential helpers, docker config fallback).
package registry
