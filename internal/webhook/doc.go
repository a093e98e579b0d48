// Package webhook holds what every ferry admission webhook shares; the webhooks themselves are its
// children (internal/webhook/serviceaccount, internal/webhook/pod).
//
//   - [CertProvider], a self-signed CA and serving certificate kept in a Secret in the webhook's
//     namespace, renewed before expiry and served through tls.Config.GetCertificate. With
//     cert-manager ([ConfigManager].CertManager) neither is used: cert-manager's CA injector fills
//     the caBundle and the server reads its certificate from the cert directory.
//   - [ConfigManager], which creates, updates and deletes the MutatingWebhookConfiguration to
//     follow the webhook-configuration block of acr-configuration (enable, failure-policy,
//     timeout-seconds), with a namespaceSelector that excludes the webhook's own namespace; the
//     ServiceAccount webhook is its first entry, [ConfigManager].Extra adds the others.
package webhook
