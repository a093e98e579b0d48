package world

import (
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestDefault(t *testing.T) {
	w, err := Default(DefaultOptions{TokenTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if got := w.TokenLifetime(); got != time.Minute {
		t.Errorf("TokenLifetime = %v", got)
	}
	a, ok := w.AccountByUID(DemoAccountA)
	if !ok {
		t.Fatal("account A missing")
	}
	for _, u := range a.Users {
		for _, k := range u.AccessKeys {
			if len(k.Secret) < 20 {
				t.Errorf("user %s key %s: secret not generated", u.Name, k.ID)
			}
		}
	}
	owner, ok := w.AccessKey("LTAI5tFerryAPuller01")
	if !ok || owner.User == nil || owner.User.Name != "acr-puller" {
		t.Fatalf("AccessKey(puller) = %+v, %v", owner, ok)
	}
	role, ok := w.ECSRoleRole()
	if !ok || role.Name != DemoWorkerRole {
		t.Fatalf("ECSRoleRole = %v, %v", role, ok)
	}
	if _, ok := w.RoleByARN("acs:ram::" + DemoAccountB + ":role/ACR-PULL"); !ok {
		t.Error("RoleByARN must be case-insensitive on the role name")
	}
	inst, vpc, ok := w.InstanceByDomain("ferry-b-registry-vpc.cn-hangzhou.cr.aliyuncs.com:5000")
	if !ok || !vpc || inst.ID != DemoInstanceBHangzhou {
		t.Errorf("InstanceByDomain = %v %v %v", inst, vpc, ok)
	}
	if got := inst.RepositoryARN("shared", "hello"); got != "acs:cr:cn-hangzhou:"+DemoAccountB+":repository/"+DemoInstanceBHangzhou+"/shared/hello" {
		t.Errorf("RepositoryARN = %s", got)
	}
	p, ns, ok := w.PersonalNamespace("cn-hangzhou", "ferry-a")
	if !ok || ns.Name != "ferry-a" || p.Owner().UID != DemoAccountA || p.Edition() != EditionPersonal {
		t.Errorf("PersonalNamespace = %v %v %v", p, ns, ok)
	}
	if got := p.RepositoryARN("ferry-a", "hello"); got != "acs:cr:cn-hangzhou:"+DemoAccountA+":repository/ferry-a/hello" {
		t.Errorf("personal RepositoryARN = %s", got)
	}
	if got := p.InternetDomain(); got != "registry.cn-hangzhou.aliyuncs.com" {
		t.Errorf("personal domain = %s", got)
	}
}

func TestWhitelist(t *testing.T) {
	w, err := Default(DefaultOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bj, _ := w.InstanceByID(DemoInstanceABeijing)
	hz, _ := w.InstanceByID(DemoInstanceAHangzhou)
	for _, tc := range []struct {
		inst *Instance
		addr string
		want bool
	}{
		{bj, "127.0.0.1", true},
		{bj, "127.0.0.2", false},
		{bj, "::ffff:127.0.0.1", true},
		{hz, "127.0.0.2", true},
	} {
		if got := tc.inst.InternetAllowed(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("%s InternetAllowed(%s) = %v, want %v", tc.inst.ID, tc.addr, got, tc.want)
		}
	}
}

func TestEnsureRepository(t *testing.T) {
	w, err := Default(DefaultOptions{})
	if err != nil {
		t.Fatal(err)
	}
	inst, _ := w.InstanceByID(DemoInstanceAHangzhou)
	for _, tc := range []struct {
		ns, repo    string
		wantCreated bool
		wantErr     error
		wantType    string
	}{
		{"apps", "hello", false, nil, RepoTypePrivate},
		{"apps", "new/web", true, nil, RepoTypePrivate},
		{"apps", "new/web", false, nil, RepoTypePrivate},
		{"public", "web", true, nil, RepoTypePublic},
		{"locked", "web", false, ErrAutoCreateOff, ""},
		{"nope", "web", false, ErrNotFound, ""},
	} {
		r, created, err := w.EnsureRepository(inst, tc.ns, tc.repo)
		if !errors.Is(err, tc.wantErr) || created != tc.wantCreated || (err == nil && r.RepoType != tc.wantType) {
			t.Errorf("EnsureRepository(%s/%s) = %+v, %v, %v", tc.ns, tc.repo, r, created, err)
		}
		if err == nil && !strings.HasPrefix(r.ID(), "crr-") {
			t.Errorf("repo id %q", r.ID())
		}
	}
	if err := w.CreateNamespace(inst, Namespace{Name: "apps"}); !errors.Is(err, ErrAlreadyExists) {
		t.Errorf("CreateNamespace(dup) = %v", err)
	}
	if err := w.CreateNamespace(inst, Namespace{Name: "Bad_"}); err == nil {
		t.Error("CreateNamespace(bad name) succeeded")
	}
	if err := w.CreateNamespace(inst, Namespace{Name: "team-x", AutoCreateRepo: true}); err != nil {
		t.Fatal(err)
	}
	if ns, ok := w.Namespace(inst, "team-x"); !ok || ns.DefaultRepoType != RepoTypePrivate {
		t.Errorf("Namespace(team-x) = %+v %v", ns, ok)
	}
	if _, err := w.CreateRepository(inst, Repository{Namespace: "team-x", Name: "api", RepoType: RepoTypePublic}); err != nil {
		t.Fatal(err)
	}
	if typ, ok := w.RepoType(inst, "team-x", "api"); !ok || typ != RepoTypePublic {
		t.Errorf("RepoType = %s %v", typ, ok)
	}
}

const validWorld = `
tokenTTL: 60s
ecsRole: {account: a, role: worker}
accounts:
- name: a
  uid: "1234567890123456"
  accessKeys: [{id: LTAI5tRootAAAA, secret: s3cr3t}]
  policies:
  - name: pull
    document: '{"Version":"1","Statement":[{"Effect":"Allow","Action":"cr:PullRepository","Resource":"*"}]}'
  users:
  - name: bob
    accessKeys: [{id: LTAI5tBobAAAAA}]
    password: pw
    policies: [pull, AliyunSTSAssumeRoleAccess]
  roles:
  - name: worker
    maxSessionDuration: 7200
    trustPolicy:
      Version: "1"
      Statement:
      - Effect: Allow
        Action: sts:AssumeRole
        Principal: {Service: [ecs.aliyuncs.com]}
    policies: [pull]
  instances:
  - id: cri-test1
    name: test
    region: cn-shanghai
    internetEndpoint: {enable: true, whitelist: [10.0.0.0/8, 127.0.0.1]}
    namespaces: [{name: ns1, autoCreateRepo: true, defaultRepoType: PUBLIC}]
    repositories: [{namespace: ns1, name: app}]
    images: [ns1/app:v1]
`

func TestParse(t *testing.T) {
	w, err := Parse(strings.NewReader(validWorld))
	if err != nil {
		t.Fatal(err)
	}
	if w.TokenLifetime() != time.Minute {
		t.Errorf("TokenLifetime = %v", w.TokenLifetime())
	}
	owner, ok := w.AccessKey("LTAI5tRootAAAA")
	if !ok || owner.User != nil || owner.Secret != "s3cr3t" {
		t.Errorf("root key = %+v %v", owner, ok)
	}
	inst, ok := w.InstanceByID("cri-test1")
	if !ok {
		t.Fatal("instance missing")
	}
	if r, ok := w.Repository(inst, "ns1", "app"); !ok || r.RepoType != RepoTypePublic {
		t.Errorf("repo = %+v %v", r, ok)
	}
	if inst.InternetAllowed(netip.MustParseAddr("127.0.0.2")) || !inst.InternetAllowed(netip.MustParseAddr("10.1.2.3")) {
		t.Error("whitelist not applied")
	}
	if inst.VPCEndpoint.Enable || len(inst.Domains()) != 1 {
		t.Errorf("Domains = %v", inst.Domains())
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, edit, old, want string
	}{
		{"max session", "maxSessionDuration: 99", "maxSessionDuration: 7200", "accounts[0].roles[0].maxSessionDuration: 99 is outside 3600..43200"},
		{"uid", `uid: "12"`, `uid: "1234567890123456"`, `accounts[0].uid: 12 must be 16 digits`},
		{"unknown policy", "policies: [pull, Nope]", "policies: [pull, AliyunSTSAssumeRoleAccess]", "accounts[0].users[0].policies[1]: Nope is neither"},
		{"bad cidr", "whitelist: [10.0.0.0/33, 127.0.0.1]", "whitelist: [10.0.0.0/8, 127.0.0.1]", "accounts[0].instances[0].internetEndpoint.whitelist[0]: 10.0.0.0/33"},
		{"repo ns", "repositories: [{namespace: nsx, name: app}]", "repositories: [{namespace: ns1, name: app}]", "accounts[0].instances[0].repositories[0].namespace: nsx is not a namespace"},
		{"effect", "Effect: Maybe", "Effect: Allow", `accounts[0].roles[0].trustPolicy.Statement[0].Effect: Maybe must be "Allow" or "Deny"`},
		{"ecs role", "ecsRole: {account: a, role: nobody}", "ecsRole: {account: a, role: worker}", "ecsRole.role: nobody is not a role"},
		{"instance id", "id: inst-1", "id: cri-test1", "accounts[0].instances[0].id: inst-1 must look like cri-"},
		{"token ttl", "tokenTTL: 10ms", "tokenTTL: 60s", "tokenTTL: 10ms must be at least 1s"},
		{"unknown field", "tokenTTLx: 60s", "tokenTTL: 60s", "unknown field"},
		{"image", "images: [ns1/app]", "images: [ns1/app:v1]", "accounts[0].instances[0].images[0]: ns1/app must be"},
		{"policy grammar", `{"Version":"2","Statement":[]}`, `{"Version":"1","Statement":[{"Effect":"Allow","Action":"cr:PullRepository","Resource":"*"}]}`, `accounts[0].policies[0].document.Version: 2 must be "1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := strings.Replace(validWorld, tc.old, tc.edit, 1)
			if doc == validWorld {
				t.Fatalf("edit %q did not apply", tc.old)
			}
			_, err := Parse(strings.NewReader(doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add(validWorld)
	f.Add(`accounts: [{name: x, uid: "1"}]`)
	f.Fuzz(func(t *testing.T, s string) {
		w, err := Parse(strings.NewReader(s))
		if err == nil && w == nil {
			t.Fatal("nil world without error")
		}
	})
}

func FuzzParsePolicyDocument(f *testing.F) {
	f.Add([]byte(`{"Version":"1","Statement":[{"Effect":"Allow","Action":["cr:*"],"Resource":"*","Condition":{"IpAddress":{"acs:SourceIp":["10.0.0.0/8"]}}}]}`), false)
	f.Add([]byte(`"{\"Version\":\"1\"}"`), true)
	f.Fuzz(func(t *testing.T, b []byte, trust bool) {
		d, err := ParsePolicyDocument(b, trust)
		if err == nil && (d == nil || d.Version != "1" || len(d.Statement) == 0) {
			t.Fatalf("accepted invalid document %+v", d)
		}
	})
}

// TestEnsureRepositoryConcurrent: concurrent pushes into a new repository create it once.
func TestEnsureRepositoryConcurrent(t *testing.T) {
	w, err := Default(DefaultOptions{})
	if err != nil {
		t.Fatal(err)
	}
	inst, _ := w.InstanceByID(DemoInstanceAHangzhou)
	const n = 16
	created := make(chan bool, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, c, err := w.EnsureRepository(inst, "apps", "race")
			if err != nil {
				t.Error(err)
			}
			created <- c
		}()
	}
	wg.Wait()
	close(created)
	count := 0
	for c := range created {
		if c {
			count++
		}
	}
	if count != 1 {
		t.Errorf("created %d times, want 1", count)
	}
	repos := 0
	for _, r := range w.Repositories(inst) {
		if r.Namespace == "apps" && r.Name == "race" {
			repos++
		}
	}
	if repos != 1 {
		t.Errorf("%d repositories apps/race", repos)
	}
}
