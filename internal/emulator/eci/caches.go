package eci

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// CreateCache records an image cache and builds it in the background: every image is pulled
// into the runtime (Preparing, Creating, then Ready or Failed). It returns the cache id and
// the id of the (emulated) instance that builds it.
func (s *Service) CreateCache(spec CacheSpec) (id, groupID string, err error) {
	if !s.Configured() {
		return "", "", ErrNoRuntime
	}
	now := s.now().UTC()
	c := &Cache{ID: newID("imc-"), Name: spec.Name, Account: spec.Account, Region: spec.Region, GroupID: newID("eci-"),
		Status: CachePreparing, Progress: "0%", Images: slices.Clone(spec.Images), Created: now,
		Events: withNotes(spec.Notes, now), imageRefs: map[string]string{}}
	if spec.RetentionDays > 0 {
		c.Expires = now.Add(time.Duration(spec.RetentionDays) * 24 * time.Hour)
	}
	s.mu.Lock()
	s.caches[c.ID] = c
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.build(s.ctx, c, spec)
	}()
	return c.ID, c.GroupID, nil
}

func (s *Service) build(ctx context.Context, c *Cache, spec CacheSpec) {
	s.mu.Lock()
	c.Status = CacheCreating
	s.mu.Unlock()
	for i, img := range spec.Images {
		host := imageHost(img)
		s.mu.Lock()
		s.event(&c.Events, "Normal", "Pulling", c.ID, "Pulling image %q", img)
		s.mu.Unlock()
		ref, err := s.rt.PullImage(ctx, img, spec.authFor(host), spec.tlsFor(host))
		s.mu.Lock()
		if err != nil {
			s.event(&c.Events, "Warning", "Failed", c.ID, "Failed to pull image %q: %v", img, err)
			c.Status = CacheFailed
			// A failed cache is kept for one day, as ECI does.
			c.Expires = s.now().UTC().Add(24 * time.Hour)
			s.mu.Unlock()
			return
		}
		c.imageRefs[img] = ref
		c.Progress = fmt.Sprintf("%d%%", (i+1)*100/len(spec.Images))
		s.event(&c.Events, "Normal", "Pulled", c.ID, "Successfully pulled image %q", img)
		s.mu.Unlock()
	}
	s.mu.Lock()
	c.Status, c.Progress = CacheReady, "100%"
	s.event(&c.Events, "Normal", "Ready", c.ID, "Image cache %s is ready", c.ID)
	s.mu.Unlock()
}

func snapshotCache(c *Cache) Cache {
	out := *c
	out.Images = slices.Clone(c.Images)
	out.Events = slices.Clone(c.Events)
	out.imageRefs = nil
	return out
}

// Caches returns snapshots of the account's caches in region, oldest first; expired ones are
// dropped.
func (s *Service) Caches(account, region string) []Cache {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var out []Cache
	for id, c := range s.caches {
		if !c.Expires.IsZero() && now.After(c.Expires) {
			delete(s.caches, id)
			continue
		}
		if c.Account == account && c.Region == region {
			out = append(out, snapshotCache(c))
		}
	}
	slices.SortFunc(out, func(a, b Cache) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// DeleteCache forgets a cache (the pulled images stay in the runtime's store).
func (s *Service) DeleteCache(account, id string) error {
	if !s.Configured() {
		return ErrNoRuntime
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.caches[id]
	if !ok || c.Account != account {
		return fmt.Errorf("image cache %s: %w", id, ErrNotFound)
	}
	delete(s.caches, id)
	return nil
}
