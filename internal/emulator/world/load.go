package world

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Load reads and validates a world file (YAML or JSON).
func Load(path string) (*World, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open world file: %w", err)
	}
	defer f.Close()
	w, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("world file %s: %w", path, err)
	}
	return w, nil
}

// Parse reads a world document (YAML or JSON), fills defaults (random secrets where none are
// given), validates it and indexes it. Validation failures come back as an ErrorList whose
// entries name the field, e.g. "accounts[1].roles[0].maxSessionDuration: 99 is outside 3600..43200".
func Parse(r io.Reader) (*World, error) {
	b, err := io.ReadAll(io.LimitReader(r, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("read world: %w", err)
	}
	var w World
	if err := yaml.UnmarshalStrict(b, &w); err != nil {
		return nil, fmt.Errorf("decode world: %w", err)
	}
	if err := w.Finalize(); err != nil {
		return nil, err
	}
	return &w, nil
}

var (
	uidRE      = regexp.MustCompile(`^[1-9][0-9]{15}$`)
	ramNameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)
	instIDRE   = regexp.MustCompile(`^cri-[a-z0-9]{1,32}$`)
	instNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$`)
	regionRE   = regexp.MustCompile(`^[a-z]{2}-[a-z0-9-]+$`)
	nsRE       = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,118}[a-z0-9])?$`)
	repoRE     = regexp.MustCompile(`^[a-z0-9]([a-z0-9._/-]{0,126}[a-z0-9])?$`)
	akIDRE     = regexp.MustCompile(`^[A-Za-z0-9]{8,64}$`)
	imageRefRE = regexp.MustCompile(`^([a-z0-9._-]+)/([a-z0-9._/-]+):([A-Za-z0-9_][A-Za-z0-9._-]{0,127})$`)
)

// Finalize fills defaults, validates and indexes a World built in code or decoded by hand.
// It is called by Parse and Default; call it again after editing a World's identity data.
func (w *World) Finalize() error {
	errs := w.validate()
	if len(errs) > 0 {
		return errs
	}
	w.index()
	return nil
}

func (w *World) validate() ErrorList {
	var errs ErrorList
	if w.TokenTTL < 0 || (w.TokenTTL > 0 && time.Duration(w.TokenTTL) < time.Second) {
		errs = append(errs, Invalid("tokenTTL", time.Duration(w.TokenTTL), "must be at least 1s"))
	}
	if len(w.Accounts) == 0 {
		errs = append(errs, Required("accounts"))
	}
	uids := map[string]bool{}
	names := map[string]bool{}
	akIDs := map[string]Path{}
	personalNS := map[string]Path{}
	instIDs := map[string]bool{}
	instNames := map[string]bool{}
	// checkRAMName checks the name of a user, role or OIDC provider at p and
	// that its key (the name, or the name lower-cased for roles) is not in seen.
	checkRAMName := func(p Path, name, key string, seen map[string]bool) {
		if !ramNameRE.MatchString(name) {
			errs = append(errs, Invalid(p.Child("name"), name, "must be 1-64 letters, digits, '.', '_', '-' or '@'"))
		} else if seen[key] {
			errs = append(errs, Invalid(p.Child("name"), name, "is a duplicate"))
		}
		seen[key] = true
	}
	checkAK := func(p Path, k *AccessKey) {
		if !akIDRE.MatchString(k.ID) {
			errs = append(errs, Invalid(p.Child("id"), k.ID, "must be 8-64 letters or digits"))
		} else if prev, dup := akIDs[k.ID]; dup {
			errs = append(errs, Invalid(p.Child("id"), k.ID, "duplicates "+string(prev)))
		} else if strings.HasPrefix(k.ID, "STS.") {
			errs = append(errs, Invalid(p.Child("id"), k.ID, "must not start with STS."))
		}
		akIDs[k.ID] = p
		if k.Secret == "" {
			k.Secret = RandomSecret(30)
		}
	}
	for ai, a := range w.Accounts {
		ap := Path("").Index("accounts", ai)
		if a == nil {
			errs = append(errs, Required(ap))
			continue
		}
		if a.Name == "" {
			errs = append(errs, Required(ap.Child("name")))
		} else if names[a.Name] {
			errs = append(errs, Invalid(ap.Child("name"), a.Name, "is a duplicate"))
		}
		names[a.Name] = true
		if !uidRE.MatchString(a.UID) {
			errs = append(errs, Invalid(ap.Child("uid"), a.UID, "must be 16 digits"))
		} else if uids[a.UID] {
			errs = append(errs, Invalid(ap.Child("uid"), a.UID, "is a duplicate"))
		}
		uids[a.UID] = true
		for ki := range a.AccessKeys {
			checkAK(ap.Index("accessKeys", ki), &a.AccessKeys[ki])
		}
		policyNames := map[string]bool{}
		for pi, p := range a.Policies {
			pp := ap.Index("policies", pi)
			if p == nil || p.Name == "" {
				errs = append(errs, Required(pp.Child("name")))
				continue
			}
			if policyNames[p.Name] {
				errs = append(errs, Invalid(pp.Child("name"), p.Name, "is a duplicate"))
			}
			policyNames[p.Name] = true
			errs = append(errs, p.Document.validate(pp.Child("document"), false)...)
		}
		checkPolicies := func(p Path, list []string) {
			for i, n := range list {
				if _, ok := a.Policy(n); !ok {
					errs = append(errs, Invalid(p.Index("policies", i), n, "is neither a policy of this account nor a system policy"))
				}
			}
		}
		userNames := map[string]bool{}
		for ui, u := range a.Users {
			up := ap.Index("users", ui)
			if u == nil {
				errs = append(errs, Required(up))
				continue
			}
			u.account = a
			checkRAMName(up, u.Name, u.Name, userNames)
			for ki := range u.AccessKeys {
				checkAK(up.Index("accessKeys", ki), &u.AccessKeys[ki])
			}
			checkPolicies(up, u.Policies)
		}
		roleNames := map[string]bool{}
		for ri, r := range a.Roles {
			rp := ap.Index("roles", ri)
			if r == nil {
				errs = append(errs, Required(rp))
				continue
			}
			r.account = a
			checkRAMName(rp, r.Name, strings.ToLower(r.Name), roleNames)
			if r.MaxSessionDuration == 0 {
				r.MaxSessionDuration = DefaultMaxSessionDuration
			} else if r.MaxSessionDuration < MinMaxSessionDuration || r.MaxSessionDuration > MaxMaxSessionDuration {
				errs = append(errs, Invalid(rp.Child("maxSessionDuration"), r.MaxSessionDuration,
					fmt.Sprintf("is outside %d..%d", MinMaxSessionDuration, MaxMaxSessionDuration)))
			}
			errs = append(errs, r.TrustPolicy.validate(rp.Child("trustPolicy"), true)...)
			checkPolicies(rp, r.Policies)
		}
		provNames := map[string]bool{}
		for oi, o := range a.OIDCProviders {
			op := ap.Index("oidcProviders", oi)
			if o == nil {
				errs = append(errs, Required(op))
				continue
			}
			o.account = a
			checkRAMName(op, o.Name, o.Name, provNames)
			if !strings.HasPrefix(o.IssuerURL, "https://") && !strings.HasPrefix(o.IssuerURL, "http://") {
				errs = append(errs, Invalid(op.Child("issuerURL"), o.IssuerURL, "must be an http(s) URL"))
			}
			if len(o.ClientIDs) == 0 {
				errs = append(errs, Required(op.Child("clientIds")))
			}
			n := 0
			for _, s := range []bool{len(o.JWKS) > 0, o.JWKSFile != "", o.JWKSURL != ""} {
				if s {
					n++
				}
			}
			if n > 1 {
				errs = append(errs, Invalid(op.Child("jwks"), "", "set at most one of jwks, jwksFile and jwksURL"))
			}
		}
		for ii, inst := range a.Instances {
			ip := ap.Index("instances", ii)
			if inst == nil {
				errs = append(errs, Required(ip))
				continue
			}
			inst.owner, inst.edition = a, EditionEnterprise
			if !instIDRE.MatchString(inst.ID) {
				errs = append(errs, Invalid(ip.Child("id"), inst.ID, "must look like cri-<lower-case letters and digits>"))
			} else if instIDs[inst.ID] {
				errs = append(errs, Invalid(ip.Child("id"), inst.ID, "is a duplicate"))
			}
			instIDs[inst.ID] = true
			if !instNameRE.MatchString(inst.Name) {
				errs = append(errs, Invalid(ip.Child("name"), inst.Name, "must be 3-64 lower-case letters, digits or '-'"))
			} else if instNames[inst.Name+"/"+inst.Region] {
				errs = append(errs, Invalid(ip.Child("name"), inst.Name, "is a duplicate in region "+inst.Region))
			}
			instNames[inst.Name+"/"+inst.Region] = true
			if inst.Specification == "" {
				inst.Specification = "Enterprise_Basic"
			}
			errs = append(errs, validateInstance(ip, inst)...)
		}
		regions := map[string]bool{}
		for pi, inst := range a.Personal {
			ip := ap.Index("personal", pi)
			if inst == nil {
				errs = append(errs, Required(ip))
				continue
			}
			inst.owner, inst.edition = a, EditionPersonal
			if inst.ID != "" || inst.Name != "" {
				errs = append(errs, Invalid(ip.Child("id"), inst.ID+inst.Name, "Personal Edition entries have no id or name"))
			}
			if regions[inst.Region] {
				errs = append(errs, Invalid(ip.Child("region"), inst.Region, "is a duplicate"))
			}
			regions[inst.Region] = true
			inst.InternetEndpoint.Enable, inst.VPCEndpoint.Enable = true, true
			errs = append(errs, validateInstance(ip, inst)...)
			for ni, n := range inst.Namespaces {
				if n == nil {
					continue
				}
				key := inst.Region + "/" + n.Name
				if prev, dup := personalNS[key]; dup {
					errs = append(errs, Invalid(ip.Index("namespaces", ni).Child("name"), n.Name, "is already used in this region by "+string(prev)))
				}
				personalNS[key] = ip.Index("namespaces", ni)
			}
		}
	}
	if w.ECSRole != nil {
		a, ok := w.AccountByNameUnindexed(w.ECSRole.Account)
		if !ok {
			errs = append(errs, Invalid("ecsRole.account", w.ECSRole.Account, "is not an account"))
		} else if _, ok := a.Role(w.ECSRole.Role); !ok {
			errs = append(errs, Invalid("ecsRole.role", w.ECSRole.Role, "is not a role of account "+a.Name))
		}
	}
	return errs
}

// AccountByNameUnindexed finds an account by name or uid before the world is indexed.
func (w *World) AccountByNameUnindexed(name string) (*Account, bool) {
	for _, a := range w.Accounts {
		if a != nil && (a.Name == name || a.UID == name) {
			return a, true
		}
	}
	return nil, false
}

func validateInstance(ip Path, inst *Instance) ErrorList {
	var errs ErrorList
	if !regionRE.MatchString(inst.Region) {
		errs = append(errs, Invalid(ip.Child("region"), inst.Region, "must be a region id such as cn-hangzhou"))
	}
	inst.prefixes = nil
	for wi, c := range inst.InternetEndpoint.Whitelist {
		p, err := parsePrefix(c)
		if err != nil {
			errs = append(errs, Invalid(ip.Child("internetEndpoint").Index("whitelist", wi), c, "is not a CIDR or an IP address"))
			continue
		}
		inst.prefixes = append(inst.prefixes, p)
	}
	nsSeen := map[string]bool{}
	for ni, n := range inst.Namespaces {
		np := ip.Index("namespaces", ni)
		if n == nil {
			errs = append(errs, Required(np))
			continue
		}
		errs = append(errs, validateNamespace(np, n)...)
		if nsSeen[n.Name] {
			errs = append(errs, Invalid(np.Child("name"), n.Name, "is a duplicate"))
		}
		nsSeen[n.Name] = true
	}
	repoSeen := map[string]bool{}
	for ri, r := range inst.Repositories {
		rp := ip.Index("repositories", ri)
		if r == nil {
			errs = append(errs, Required(rp))
			continue
		}
		ns := findNS(inst, r.Namespace)
		if ns == nil {
			errs = append(errs, Invalid(rp.Child("namespace"), r.Namespace, "is not a namespace of this instance"))
			continue
		}
		errs = append(errs, validateRepoName(rp.Child("name"), r.Name)...)
		if r.RepoType == "" {
			r.RepoType = ns.DefaultRepoType
		} else if r.RepoType != RepoTypePublic && r.RepoType != RepoTypePrivate {
			errs = append(errs, Invalid(rp.Child("repoType"), r.RepoType, "must be PUBLIC or PRIVATE"))
		}
		key := r.Namespace + "/" + r.Name
		if repoSeen[key] {
			errs = append(errs, Invalid(rp.Child("name"), r.Name, "is a duplicate in namespace "+r.Namespace))
		}
		repoSeen[key] = true
		if r.id == "" {
			r.id = "crr-" + stableHex(instLabel(inst)+"/"+key, 16)
			r.created = time.Now().UTC()
		}
	}
	for ii, ref := range inst.Images {
		m := imageRefRE.FindStringSubmatch(ref)
		if m == nil {
			errs = append(errs, Invalid(ip.Index("images", ii), ref, "must be <namespace>/<repo>:<tag>"))
			continue
		}
		if findNS(inst, m[1]) == nil {
			errs = append(errs, Invalid(ip.Index("images", ii), ref, "names a namespace this instance does not have"))
		}
	}
	return errs
}

func validateNamespace(np Path, n *Namespace) ErrorList {
	var errs ErrorList
	if len(n.Name) < 2 || !nsRE.MatchString(n.Name) {
		errs = append(errs, Invalid(np.Child("name"), n.Name, "must be 2-120 lower-case letters, digits, '_', '-' or '.', not starting or ending with a delimiter"))
	}
	switch n.DefaultRepoType {
	case "":
		n.DefaultRepoType = RepoTypePrivate
	case RepoTypePublic, RepoTypePrivate:
	default:
		errs = append(errs, Invalid(np.Child("defaultRepoType"), n.DefaultRepoType, "must be PUBLIC or PRIVATE"))
	}
	return errs
}

func validateRepoName(p Path, name string) ErrorList {
	if !repoRE.MatchString(name) || strings.Contains(name, "//") {
		return ErrorList{Invalid(p, name, "must be lower-case letters, digits, '.', '_', '-' or '/'")}
	}
	return nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

func (w *World) index() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.byUID = map[string]*Account{}
	w.byName = map[string]*Account{}
	w.akIndex = map[string]accessKeyRef{}
	w.instances = map[string]*Instance{}
	w.domains = map[string]*Instance{}
	now := time.Now().UTC()
	for _, a := range w.Accounts {
		w.byUID[a.UID] = a
		w.byName[a.Name] = a
		for _, k := range a.AccessKeys {
			w.akIndex[k.ID] = accessKeyRef{account: a, secret: k.Secret}
		}
		for _, u := range a.Users {
			for _, k := range u.AccessKeys {
				w.akIndex[k.ID] = accessKeyRef{account: a, user: u, secret: k.Secret}
			}
		}
		for _, inst := range a.Instances {
			inst.created = now
			w.instances[inst.ID] = inst
			w.domains[inst.InternetDomain()] = inst
			w.domains[inst.VPCDomain()] = inst
		}
		for _, inst := range a.Personal {
			inst.created = now
		}
	}
}

// RandomSecret returns n random URL-safe characters, for AccessKey secrets and passwords.
func RandomSecret(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)[:n]
}
