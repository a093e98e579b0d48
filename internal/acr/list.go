package acr

import (
	"context"
	"fmt"
	"strconv"

	cr "github.com/alibabacloud-go/cr-20181201/v2/client"
	"github.com/alibabacloud-go/tea/dara"
	"github.com/aliyun/credentials-go/credentials"
)

// listPageSize is the page size asked of ListRepository and ListRepoTag (the API's maximum is 100).
const listPageSize = 100

// maxListPages bounds a listing that never ends (a service answering a full page for ever).
const maxListPages = 10_000

// Repository is one repository of an Enterprise Edition instance, as ListRepository reports it.
type Repository struct {
	ID, Namespace, Name string
}

// Repositories lists the NORMAL repositories of inst in namespace ("" = all namespaces) with
// ListRepository, page by page.
func (c *Client) Repositories(ctx context.Context, cred credentials.Credential, inst Instance, namespace string) ([]Repository, error) {
	client, err := cr.NewClient(c.config(ctx, cred, inst.Region))
	if err != nil {
		return nil, fmt.Errorf("acr: client for %s: %w", inst.Region, err)
	}
	var out []Repository
	for page := int32(1); page <= maxListPages; page++ {
		req := &cr.ListRepositoryRequest{InstanceId: dara.String(inst.ID), RepoStatus: dara.String("NORMAL"),
			PageNo: dara.Int32(page), PageSize: dara.Int32(listPageSize)}
		if namespace != "" {
			req.RepoNamespaceName = dara.String(namespace)
		}
		res, err := client.ListRepositoryWithOptions(req, &dara.RuntimeOptions{})
		if err != nil {
			return nil, fmt.Errorf("acr: repositories of %s: %w", inst.Key(), c.apiErr("ListRepository", err, cred))
		}
		if res.Body == nil {
			return nil, fmt.Errorf("acr: repositories of %s: empty response", inst.Key())
		}
		for _, r := range res.Body.Repositories {
			out = append(out, Repository{ID: dara.StringValue(r.RepoId), Namespace: dara.StringValue(r.RepoNamespaceName), Name: dara.StringValue(r.RepoName)})
		}
		total, _ := strconv.Atoi(dara.StringValue(res.Body.TotalCount))
		if len(res.Body.Repositories) < listPageSize || len(out) >= total {
			return out, nil
		}
	}
	return nil, fmt.Errorf("acr: repositories of %s: more than %d pages", inst.Key(), maxListPages)
}

// RepoTags lists the tags of the repository with ListRepoTag, page by page.
func (c *Client) RepoTags(ctx context.Context, cred credentials.Credential, inst Instance, repoID string) ([]string, error) {
	client, err := cr.NewClient(c.config(ctx, cred, inst.Region))
	if err != nil {
		return nil, fmt.Errorf("acr: client for %s: %w", inst.Region, err)
	}
	var out []string
	for page := int32(1); page <= maxListPages; page++ {
		res, err := client.ListRepoTagWithOptions(&cr.ListRepoTagRequest{InstanceId: dara.String(inst.ID), RepoId: dara.String(repoID),
			PageNo: dara.Int32(page), PageSize: dara.Int32(listPageSize)}, &dara.RuntimeOptions{})
		if err != nil {
			return nil, fmt.Errorf("acr: tags of repository %s in %s: %w", repoID, inst.Key(), c.apiErr("ListRepoTag", err, cred))
		}
		if res.Body == nil {
			return nil, fmt.Errorf("acr: tags of repository %s in %s: empty response", repoID, inst.Key())
		}
		for _, img := range res.Body.Images {
			out = append(out, dara.StringValue(img.Tag))
		}
		total, _ := strconv.Atoi(dara.StringValue(res.Body.TotalCount))
		if len(res.Body.Images) < listPageSize || len(out) >= total {
			return out, nil
		}
	}
	return nil, fmt.Errorf("acr: tags of repository %s in %s: more than %d pages", repoID, inst.Key(), maxListPages)
}
