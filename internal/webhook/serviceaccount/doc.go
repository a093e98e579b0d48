// Package serviceaccount is the mutating admission webhook on ServiceAccount CREATE that adds the
// namespace's ferry pull Secrets at once, closing the race in which a Pod is admitted before the
// controller has patched its new ServiceAccount.
//
// It has three parts:
//
//   - [Mutator], the admission handler, served at [Path]. It asks a [Policy] (the pull-secret
//     controller's Store) which Secrets the new ServiceAccount gets and merges them in.
//   - [CertProvider], a self-signed CA and serving certificate kept in a Secret in the
//     webhook's namespace, renewed before expiry and served through tls.Config.GetCertificate.
//     With cert-manager ([ConfigManager].CertManager) neither is used: cert-manager's CA injector
//     fills the caBundle and the server reads its certificate from the cert directory.
//   - [ConfigManager], which creates, updates and deletes the MutatingWebhookConfiguration to
//     follow the webhook-configuration block of acr-configuration (enable, failure-policy,
//     timeout-seconds), with a namespaceSelector that excludes the webhook's own namespace.
package serviceaccount
