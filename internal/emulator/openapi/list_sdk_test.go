package openapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	cr "github.com/alibabacloud-go/cr-20181201/v2/client"
	"github.com/alibabacloud-go/tea/tea"

	"github.com/ferrypull/ferry/internal/emulator/world"
)

// pagedTags is a TagLister of n generated tags per repository that records
// every page it was asked for, so a test can see paging reach the lister.
type pagedTags struct {
	n     int
	mu    sync.Mutex
	asked [][2]int
}

func (p *pagedTags) ListTags(_ context.Context, _ *world.Instance, _, _ string, offset, limit int) ([]Tag, int, error) {
	p.mu.Lock()
	p.asked = append(p.asked, [2]int{offset, limit})
	p.mu.Unlock()
	var out []Tag
	for i := offset; i < min(offset+limit, p.n); i++ {
		out = append(out, Tag{Tag: fmt.Sprintf("v%04d", i), Digest: fmt.Sprintf("sha256:%064x", i), ImageID: fmt.Sprintf("sha256:%064x", i+1<<20),
			Size: int64(i), Updated: time.UnixMilli(int64(1e12 + i))})
	}
	return out, p.n, nil
}

// TestCRListRepositoryPaging pages through ListRepository with the official
// SDK (ACS3 and RPC v1): every repository once, in order, TotalCount the
// whole match as a string, filters and bad parameters.
func TestCRListRepositoryPaging(t *testing.T) {
	e := newEnv(t, envOptions{})
	inst := tea.String(world.DemoInstanceAHangzhou)
	admin := e.cr(t, "LTAI5tFerryAAdmin001", e.secret(t, "LTAI5tFerryAAdmin001"), clientOpts{})
	if _, err := admin.CreateNamespace(&cr.CreateNamespaceRequest{InstanceId: inst, NamespaceName: tea.String("team")}); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, n := range []string{"r3", "r0", "r4", "r1", "r2"} {
		if _, err := admin.CreateRepository(&cr.CreateRepositoryRequest{InstanceId: inst, RepoNamespaceName: tea.String("team"), RepoName: tea.String(n), RepoType: tea.String("PRIVATE")}); err != nil {
			t.Fatal(err)
		}
		want = append(want, n)
	}
	slices.Sort(want)

	for _, alg := range []string{"", "v2"} {
		t.Run("alg="+alg, func(t *testing.T) {
			c := e.cr(t, "LTAI5tFerryAAdmin001", e.secret(t, "LTAI5tFerryAAdmin001"), clientOpts{algorithm: alg})
			var got []string
			for page := int32(1); page <= 4; page++ {
				res, err := c.ListRepository(&cr.ListRepositoryRequest{InstanceId: inst, RepoNamespaceName: tea.String("team"), PageNo: tea.Int32(page), PageSize: tea.Int32(2)})
				if err != nil {
					t.Fatalf("page %d: %v", page, err)
				}
				b := res.Body
				if tea.StringValue(b.TotalCount) != "5" || tea.Int32Value(b.PageNo) != page || tea.Int32Value(b.PageSize) != 2 || !tea.BoolValue(b.IsSuccess) {
					t.Fatalf("page %d envelope = %s", page, b)
				}
				if wantLen := []int{2, 2, 1, 0}[page-1]; len(b.Repositories) != wantLen {
					t.Fatalf("page %d has %d repositories, want %d", page, len(b.Repositories), wantLen)
				}
				for _, r := range b.Repositories {
					if tea.StringValue(r.RepoNamespaceName) != "team" || tea.StringValue(r.RepoStatus) != "NORMAL" || tea.StringValue(r.InstanceId) != world.DemoInstanceAHangzhou {
						t.Errorf("repository = %s", r)
					}
					got = append(got, tea.StringValue(r.RepoName))
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("paged names = %v, want %v", got, want)
			}
		})
	}

	count := func(t *testing.T, req *cr.ListRepositoryRequest) string {
		t.Helper()
		req.InstanceId = inst
		res, err := admin.ListRepository(req)
		if err != nil {
			t.Fatal(err)
		}
		if n := tea.StringValue(res.Body.TotalCount); n != strconv.Itoa(len(res.Body.Repositories)) {
			t.Errorf("TotalCount %s but %d repositories on the only page", n, len(res.Body.Repositories))
		}
		return tea.StringValue(res.Body.TotalCount)
	}
	for _, tc := range []struct {
		name string
		req  *cr.ListRepositoryRequest
		want string
	}{
		{"whole instance", &cr.ListRepositoryRequest{}, "7"}, // apps/hello, public/hello, team/r0..r4
		{"RepoName", &cr.ListRepositoryRequest{RepoName: tea.String("hello")}, "2"},
		{"RepoName in namespace", &cr.ListRepositoryRequest{RepoNamespaceName: tea.String("team"), RepoName: tea.String("r1")}, "1"},
		{"RepoStatus ALL", &cr.ListRepositoryRequest{RepoNamespaceName: tea.String("team"), RepoStatus: tea.String("ALL")}, "5"},
		{"RepoStatus NORMAL", &cr.ListRepositoryRequest{RepoNamespaceName: tea.String("team"), RepoStatus: tea.String("NORMAL")}, "5"},
		{"RepoStatus DELETED", &cr.ListRepositoryRequest{RepoNamespaceName: tea.String("team"), RepoStatus: tea.String("DELETED")}, "0"},
		{"unknown namespace", &cr.ListRepositoryRequest{RepoNamespaceName: tea.String("nope")}, "0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := count(t, tc.req); got != tc.want {
				t.Errorf("TotalCount = %s, want %s", got, tc.want)
			}
		})
	}

	for _, tc := range []struct {
		name       string
		req        *cr.ListRepositoryRequest
		wantCode   string
		wantStatus int
	}{
		{"PageSize over 100", &cr.ListRepositoryRequest{InstanceId: inst, PageSize: tea.Int32(101)}, "InvalidParameter", 400},
		{"PageSize 0", &cr.ListRepositoryRequest{InstanceId: inst, PageSize: tea.Int32(0)}, "InvalidParameter", 400},
		{"PageNo 0", &cr.ListRepositoryRequest{InstanceId: inst, PageNo: tea.Int32(0)}, "InvalidParameter", 400},
		{"bad RepoStatus", &cr.ListRepositoryRequest{InstanceId: inst, RepoStatus: tea.String("GONE")}, "InvalidParameter", 400},
		{"no InstanceId", &cr.ListRepositoryRequest{}, "MissingParameter", 400},
		{"unknown instance", &cr.ListRepositoryRequest{InstanceId: tea.String("cri-nope")}, "INSTANCE_NOT_EXIST", 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := admin.ListRepository(tc.req)
			if code, status := errCode(err); code != tc.wantCode || status != tc.wantStatus {
				t.Fatalf("error = %v, want %s/%d", err, tc.wantCode, tc.wantStatus)
			}
		})
	}
}

// TestCRListRepoTagPaging pages through 250 tags 100 at a time with the SDK:
// each tag once, in order, TotalCount "250" on every page, the string and
// int64 field types the SDK expects, and the lister asked for exactly the
// page (the emulator does not read every tag to answer one page).
func TestCRListRepoTagPaging(t *testing.T) {
	tags := &pagedTags{n: 250}
	e := newEnv(t, envOptions{opts: []Option{WithTagLister(tags)}})
	inst := tea.String(world.DemoInstanceAHangzhou)
	admin := e.cr(t, "LTAI5tFerryAAdmin001", e.secret(t, "LTAI5tFerryAAdmin001"), clientOpts{})
	repoID := repoIDOf(t, e, world.DemoInstanceAHangzhou, "apps", "hello")

	var got []string
	for page := int32(1); page <= 3; page++ {
		res, err := admin.ListRepoTag(&cr.ListRepoTagRequest{InstanceId: inst, RepoId: tea.String(repoID), PageNo: tea.Int32(page), PageSize: tea.Int32(100)})
		if err != nil {
			t.Fatal(err)
		}
		b := res.Body
		if tea.StringValue(b.TotalCount) != "250" || tea.Int32Value(b.PageNo) != page || tea.Int32Value(b.PageSize) != 100 {
			t.Fatalf("page %d envelope = %s", page, b)
		}
		for _, im := range b.Images {
			got = append(got, tea.StringValue(im.Tag))
		}
		if page == 1 {
			im := b.Images[7]
			if tea.StringValue(im.Digest) != fmt.Sprintf("sha256:%064x", 7) || tea.StringValue(im.ImageId) != fmt.Sprintf("%064x", 7+1<<20) ||
				tea.Int64Value(im.ImageSize) != 7 || tea.StringValue(im.ImageUpdate) != strconv.FormatInt(1e12+7, 10) ||
				tea.StringValue(im.ImageCreate) != strconv.FormatInt(1e12+7, 10) || tea.StringValue(im.Status) != "NORMAL" {
				t.Errorf("image = %s", im)
			}
		}
	}
	if len(got) != 250 || got[0] != "v0000" || got[249] != "v0249" || !slices.IsSorted(got) {
		t.Fatalf("got %d tags (%v … %v)", len(got), got[:1], got[len(got)-1:])
	}
	if want := [][2]int{{0, 100}, {100, 100}, {200, 100}}; !slices.Equal(tags.asked, want) {
		t.Errorf("lister asked for %v, want %v", tags.asked, want)
	}
	// Default page: 30 tags.
	res, err := admin.ListRepoTag(&cr.ListRepoTagRequest{InstanceId: inst, RepoId: tea.String(repoID)})
	if err != nil || len(res.Body.Images) != 30 || tea.Int32Value(res.Body.PageSize) != 30 || tea.Int32Value(res.Body.PageNo) != 1 {
		t.Fatalf("default page = %v %v", res, err)
	}

	repoB := repoIDOf(t, e, world.DemoInstanceBHangzhou, "shared", "hello")
	for _, tc := range []struct {
		name       string
		req        *cr.ListRepoTagRequest
		wantCode   string
		wantStatus int
	}{
		{"no RepoId", &cr.ListRepoTagRequest{InstanceId: inst}, "MissingParameter", 400},
		{"unknown RepoId", &cr.ListRepoTagRequest{InstanceId: inst, RepoId: tea.String("crr-nope")}, "REPO_NOT_EXIST", 404},
		{"RepoId of another instance", &cr.ListRepoTagRequest{InstanceId: inst, RepoId: tea.String(repoB)}, "REPO_NOT_EXIST", 404},
		{"PageSize over 100", &cr.ListRepoTagRequest{InstanceId: inst, RepoId: tea.String(repoID), PageSize: tea.Int32(500)}, "InvalidParameter", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := admin.ListRepoTag(tc.req)
			if code, status := errCode(err); code != tc.wantCode || status != tc.wantStatus {
				t.Fatalf("error = %v, want %s/%d", err, tc.wantCode, tc.wantStatus)
			}
		})
	}
}

// TestCRListRAM: the RAM checks of ListRepository and ListRepoTag use the
// documented actions and resources: the image-syncer user may list its own
// namespace only, the pull-only user nothing, another account nothing; the
// denial names the action and resource in AccessDeniedDetail.
func TestCRListRAM(t *testing.T) {
	e := newEnv(t, envOptions{opts: []Option{WithTagLister(&pagedTags{n: 3})}})
	inst := tea.String(world.DemoInstanceAHangzhou)
	admin := e.cr(t, "LTAI5tFerryAAdmin001", e.secret(t, "LTAI5tFerryAAdmin001"), clientOpts{})
	created, err := admin.CreateRepository(&cr.CreateRepositoryRequest{InstanceId: inst, RepoNamespaceName: tea.String("image-syncer"), RepoName: tea.String("mirror"), RepoType: tea.String("PRIVATE")})
	if err != nil {
		t.Fatal(err)
	}
	mirrorID := tea.StringValue(created.Body.RepoId)
	appsID := repoIDOf(t, e, world.DemoInstanceAHangzhou, "apps", "hello")
	syncer := e.cr(t, "LTAI5tFerryASyncer01", e.secret(t, "LTAI5tFerryASyncer01"), clientOpts{})
	puller := e.cr(t, "LTAI5tFerryAPuller01", e.secret(t, "LTAI5tFerryAPuller01"), clientOpts{})
	adminB := e.cr(t, "LTAI5tFerryBAdmin001", e.secret(t, "LTAI5tFerryBAdmin001"), clientOpts{})
	uidA := world.DemoAccountA
	nsARN := "acs:cr:cn-hangzhou:" + uidA + ":repository/" + world.DemoInstanceAHangzhou

	listRepo := func(c *cr.Client, ns string) error {
		req := &cr.ListRepositoryRequest{InstanceId: inst}
		if ns != "" {
			req.RepoNamespaceName = tea.String(ns)
		}
		_, err := c.ListRepository(req)
		return err
	}
	listTags := func(c *cr.Client, id string) error {
		_, err := c.ListRepoTag(&cr.ListRepoTagRequest{InstanceId: inst, RepoId: tea.String(id)})
		return err
	}
	for _, tc := range []struct {
		name         string
		call         func() error
		wantAction   string // "" = allowed
		wantResource string
	}{
		{"syncer lists its namespace", func() error { return listRepo(syncer, "image-syncer") }, "", ""},
		{"syncer lists tags in its namespace", func() error { return listTags(syncer, mirrorID) }, "", ""},
		{"syncer lists another namespace", func() error { return listRepo(syncer, "apps") }, "cr:ListRepository", nsARN + "/apps/*"},
		{"syncer lists the whole instance", func() error { return listRepo(syncer, "") }, "cr:ListRepository", nsARN + "/*"},
		{"syncer lists tags elsewhere", func() error { return listTags(syncer, appsID) }, "cr:ListRepoTag", nsARN + "/apps/hello"},
		{"puller lists repositories", func() error { return listRepo(puller, "apps") }, "cr:ListRepository", nsARN + "/apps/*"},
		{"puller lists tags", func() error { return listTags(puller, appsID) }, "cr:ListRepoTag", nsARN + "/apps/hello"},
		{"other account's admin lists", func() error { return listRepo(adminB, "apps") }, "cr:ListRepository", nsARN + "/apps/*"},
		{"other account's admin lists tags", func() error { return listTags(adminB, appsID) }, "cr:ListRepoTag", nsARN + "/apps/hello"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if tc.wantAction == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if code, status := errCode(err); code != "NoPrivilege" || status != 403 {
				t.Fatalf("error = %v, want NoPrivilege/403", err)
			}
			// cr-20181201 v2.5.0 raises a *tea.SDKError whose Data is the error body.
			var se *tea.SDKError
			if !errors.As(err, &se) {
				t.Fatalf("error %T is not a tea.SDKError", err)
			}
			var body struct{ AccessDeniedDetail map[string]any }
			if err := json.Unmarshal([]byte(tea.StringValue(se.Data)), &body); err != nil {
				t.Fatalf("error data %q: %v", tea.StringValue(se.Data), err)
			}
			d := body.AccessDeniedDetail
			if d["AuthAction"] != tc.wantAction || d["AuthResource"] != tc.wantResource {
				t.Errorf("AccessDeniedDetail = %v, want %s on %s", d, tc.wantAction, tc.wantResource)
			}
		})
	}
}

// repoIDOf returns the crr-… id of an existing repository.
func repoIDOf(t *testing.T, e *env, instance, ns, name string) string {
	t.Helper()
	inst, ok := e.w.InstanceByID(instance)
	if !ok {
		t.Fatalf("no instance %s", instance)
	}
	r, ok := e.w.Repository(inst, ns, name)
	if !ok {
		t.Fatalf("no repository %s/%s in %s", ns, name, instance)
	}
	return r.ID()
}
