// Package registry serves the emulator's container registries: one embedded
// distribution/v3 registry per Enterprise Edition instance and per Personal
// Edition region, routed by Host header, behind a Docker token realm whose
// grants follow the emulator's RAM policies.
//
// The front is an http.Handler. It needs a Directory (what instances exist,
// who a login is, what RAM allows) and a data directory:
//
//	front, err := registry.New(dir, registry.Options{DataDir: "/var/lib/acr-emulator"})
//	if err != nil { ... }
//	defer front.Close()
//	srv := &http.Server{Handler: front}
//
// Requests for "/auth" are token requests (GET, or the OAuth2 POST form that
// containerd tries first); every other request goes to the registry of the
// instance named by the Host header (see Front.ServeHTTP for the fallbacks).
package registry
