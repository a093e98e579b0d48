// Package serviceaccount is the mutating admission webhook on ServiceAccount CREATE that adds the
// namespace's ferry pull Secrets at once, closing the race in which a Pod is admitted before the
// controller has patched its new ServiceAccount.
//
// [Mutator], the admission handler, is served at [Path]. It asks a [Policy] (the pull-secret
// Store, internal/pullsecret) which Secrets the new ServiceAccount gets and merges them in. Its
// entry in the MutatingWebhookConfiguration is written by internal/webhook's ConfigManager.
package serviceaccount
