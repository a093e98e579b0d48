package eci

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// CreateGroup records a container group and starts it in the background: sandbox, image
// pulls (with the spec's credentials, or from an image cache), containers, then supervision
// under the restart policy. It fails only for ErrNoRuntime and an unusable ImageSnapshotId;
// everything else shows in the group's status and events.
func (s *Service) CreateGroup(spec GroupSpec) (string, error) {
	if !s.Configured() {
		return "", ErrNoRuntime
	}
	if spec.RestartPolicy == "" {
		spec.RestartPolicy = RestartAlways
	}
	var cache *Cache
	if spec.ImageSnapshotID != "" {
		s.mu.Lock()
		c, ok := s.caches[spec.ImageSnapshotID]
		s.mu.Unlock()
		if !ok || c.Account != spec.Account {
			return "", fmt.Errorf("image cache %s: %w", spec.ImageSnapshotID, ErrNotFound)
		}
		if c.Status != CacheReady {
			return "", fmt.Errorf("image cache %s is %s: %w", c.ID, c.Status, ErrCacheNotReady)
		}
		cache = c
	} else if spec.AutoMatchImageCache {
		cache = s.matchCache(spec)
	}
	now := s.now().UTC()
	g := &group{spec: spec, done: make(chan struct{})}
	g.Group = Group{ID: newID("eci-"), Name: spec.Name, Account: spec.Account, Region: spec.Region,
		RestartPolicy: spec.RestartPolicy, Status: StatusPending, Created: now, Events: withNotes(spec.Notes, now)}
	if cache != nil {
		g.ImageCacheID = cache.ID
	}
	for _, c := range spec.Containers {
		g.Containers = append(g.Containers, Container{ContainerSpec: c, Current: ContainerState{State: StateWaiting, Reason: "ContainerCreating"}})
	}
	ctx, cancel := context.WithCancel(s.ctx)
	g.cancel = cancel
	s.mu.Lock()
	s.groups[g.ID] = g
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(g.done)
		s.run(ctx, g, cache)
	}()
	return g.ID, nil
}

// matchCache picks the Ready cache of the account and region holding most of the spec's images.
func (s *Service) matchCache(spec GroupSpec) *Cache {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best *Cache
	bestN := 0
	for _, c := range s.caches {
		if c.Account != spec.Account || c.Region != spec.Region || c.Status != CacheReady {
			continue
		}
		n := 0
		for _, ct := range spec.Containers {
			if _, ok := c.imageRefs[ct.Image]; ok {
				n++
			}
		}
		if n > bestN || (n == bestN && n > 0 && c.Created.After(best.Created)) {
			best, bestN = c, n
		}
	}
	return best
}

// update runs fn on the group under the lock.
func (s *Service) update(g *group, fn func(*Group)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(&g.Group)
}

func (s *Service) fail(g *group, reason, format string, args ...any) {
	s.update(g, func(gr *Group) {
		s.event(&gr.Events, "Warning", reason, gr.ID, format, args...)
		gr.Status, gr.Failed = StatusFailed, s.now().UTC()
	})
}

func (s *Service) run(ctx context.Context, g *group, cache *Cache) {
	sb := Sandbox{GroupID: g.ID, Name: g.Name, Account: g.Account}
	sandboxID, err := s.rt.RunSandbox(ctx, sb)
	if err != nil {
		s.fail(g, "FailedCreatePodSandBox", "Failed to create the sandbox: %v", err)
		return
	}
	s.update(g, func(gr *Group) {
		gr.SandboxID = sandboxID
		s.event(&gr.Events, "Normal", "Scheduled", gr.ID, "Successfully assigned %s to the acr-emulator's containerd", gr.ID)
	})
	refs := make([]string, len(g.spec.Containers))
	for i, c := range g.spec.Containers {
		ref, err := s.image(ctx, g, c, cache)
		if err != nil {
			s.update(g, func(gr *Group) {
				gr.Containers[i].Current = ContainerState{State: StateWaiting, Reason: "ErrImagePull", Message: err.Error()}
			})
			s.fail(g, "Failed", "Failed to pull image %q: %v", c.Image, err)
			return
		}
		refs[i] = ref
	}
	ids := make([]string, len(refs))
	for i, c := range g.spec.Containers {
		id, err := s.startContainer(ctx, g, sandboxID, sb, i, c, refs[i], 0)
		if err != nil {
			s.fail(g, "Failed", "Error: %v", err)
			return
		}
		ids[i] = id
	}
	s.supervise(ctx, g, sandboxID, sb, refs, ids)
}

// image returns the runtime reference of c's image: from the cache, already present
// (IfNotPresent/Never), or pulled with the credential of its host.
func (s *Service) image(ctx context.Context, g *group, c ContainerSpec, cache *Cache) (string, error) {
	name := g.ID + "." + c.Name
	if cache != nil {
		if ref, ok := cache.imageRefs[c.Image]; ok {
			if _, present, err := s.rt.ImageRef(ctx, ref); err == nil && present {
				s.update(g, func(gr *Group) {
					s.event(&gr.Events, "Normal", "Pulled", name, "Container image %q already present on machine (image cache %s)", c.Image, cache.ID)
				})
				return ref, nil
			}
		}
	}
	if c.ImagePullPolicy == "Never" {
		ref, present, err := s.rt.ImageRef(ctx, c.Image)
		if err != nil || !present {
			return "", fmt.Errorf("image is not present and the pull policy is Never")
		}
		return ref, nil
	}
	host := imageHost(c.Image)
	s.update(g, func(gr *Group) { s.event(&gr.Events, "Normal", "Pulling", name, "Pulling image %q", c.Image) })
	start := s.now()
	ref, err := s.rt.PullImage(ctx, c.Image, g.spec.authFor(host), g.spec.tlsFor(host))
	if err != nil {
		return "", err
	}
	s.update(g, func(gr *Group) {
		s.event(&gr.Events, "Normal", "Pulled", name, "Successfully pulled image %q in %s", c.Image, s.now().Sub(start).Round(time.Millisecond))
	})
	return ref, nil
}

func (s *Service) startContainer(ctx context.Context, g *group, sandboxID string, sb Sandbox, i int, c ContainerSpec, ref string, attempt int) (string, error) {
	name := g.ID + "." + c.Name
	id, err := s.rt.CreateContainer(ctx, sandboxID, sb, c, ref, attempt)
	if err != nil {
		return "", fmt.Errorf("create container %s: %w", c.Name, err)
	}
	s.update(g, func(gr *Group) { s.event(&gr.Events, "Normal", "Created", name, "Created container %s", c.Name) })
	if err := s.rt.StartContainer(ctx, id); err != nil {
		return "", fmt.Errorf("start container %s: %w", c.Name, err)
	}
	s.update(g, func(gr *Group) {
		s.event(&gr.Events, "Normal", "Started", name, "Started container %s", c.Name)
		gr.Containers[i].id, gr.Containers[i].ImageRef = id, ref
	})
	return id, nil
}

// supervise follows the containers until the group ends (Never, OnFailure) or is deleted,
// restarting containers as the restart policy says.
func (s *Service) supervise(ctx context.Context, g *group, sandboxID string, sb Sandbox, refs, ids []string) {
	t := time.NewTicker(s.poll)
	defer t.Stop()
	policy := g.spec.RestartPolicy
	for {
		states := make([]ContainerState, len(ids))
		for i, id := range ids {
			st, err := s.rt.ContainerStatus(ctx, id)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				st = ContainerState{State: StateWaiting, Reason: "Unknown", Message: err.Error()}
			}
			states[i] = st
		}
		var restart []int
		terminal := false
		s.update(g, func(gr *Group) {
			running, failed, done := 0, 0, 0
			for i, st := range states {
				gr.Containers[i].Current = st
				gr.Containers[i].Ready = st.State == StateRunning
				switch {
				case st.State == StateRunning:
					running++
				case st.State == StateTerminated && (policy == RestartAlways || (policy == RestartOnFailure && st.ExitCode != 0)):
					restart = append(restart, i)
				case st.State == StateTerminated && st.ExitCode != 0:
					failed++
					done++
				case st.State == StateTerminated:
					done++
				}
			}
			switch {
			case done == len(states) && failed > 0:
				if gr.Status != StatusFailed {
					gr.Status, gr.Failed = StatusFailed, s.now().UTC()
				}
			case done == len(states):
				if gr.Status != StatusSucceeded {
					gr.Status, gr.Succeeded = StatusSucceeded, s.now().UTC()
				}
			case running > 0 || len(restart) > 0:
				gr.Status = StatusRunning
			}
			terminal = gr.Status == StatusSucceeded || gr.Status == StatusFailed
		})
		if terminal {
			return
		}
		for _, i := range restart {
			c := g.spec.Containers[i]
			attempt := 0
			s.update(g, func(gr *Group) {
				gr.Containers[i].Previous = states[i]
				gr.Containers[i].RestartCount++
				attempt = gr.Containers[i].RestartCount
				s.event(&gr.Events, "Warning", "BackOff", gr.ID+"."+c.Name, "Restarting container %s (exit code %d)", c.Name, states[i].ExitCode)
			})
			id, err := s.startContainer(ctx, g, sandboxID, sb, i, c, refs[i], attempt)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				s.fail(g, "Failed", "Error: %v", err)
				return
			}
			ids[i] = id
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func snapshot(g *Group) Group {
	out := *g
	out.Containers = slices.Clone(g.Containers)
	out.Events = slices.Clone(g.Events)
	return out
}

// Group returns a snapshot of the account's group id.
func (s *Service) Group(account, id string) (Group, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[id]
	if !ok || g.Account != account {
		return Group{}, false
	}
	return snapshot(&g.Group), true
}

// Groups returns snapshots of the account's groups in region, oldest first.
func (s *Service) Groups(account, region string) []Group {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Group
	for _, g := range s.groups {
		if g.Account == account && g.Region == region {
			out = append(out, snapshot(&g.Group))
		}
	}
	slices.SortFunc(out, func(a, b Group) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// DeleteGroup stops supervision and removes the group's sandbox and containers.
func (s *Service) DeleteGroup(ctx context.Context, account, id string) error {
	if !s.Configured() {
		return ErrNoRuntime
	}
	s.mu.Lock()
	g, ok := s.groups[id]
	if ok && g.Account == account {
		delete(s.groups, id)
	}
	s.mu.Unlock()
	if !ok || g.Account != account {
		return fmt.Errorf("container group %s: %w", id, ErrNotFound)
	}
	g.cancel()
	<-g.done
	if g.SandboxID == "" {
		return nil
	}
	if err := s.rt.RemoveSandbox(ctx, g.SandboxID); err != nil {
		return fmt.Errorf("delete container group %s: %w", id, err)
	}
	return nil
}

// Log returns the log of a container of the group (the first when name is empty), at most
// the last tail lines when tail > 0.
func (s *Service) Log(ctx context.Context, account, id, name string, tail int) (string, string, error) {
	if !s.Configured() {
		return "", "", ErrNoRuntime
	}
	g, ok := s.Group(account, id)
	if !ok {
		return "", "", fmt.Errorf("container group %s: %w", id, ErrNotFound)
	}
	var c *Container
	for i := range g.Containers {
		if name == "" || g.Containers[i].Name == name {
			c = &g.Containers[i]
			break
		}
	}
	if c == nil {
		return "", "", fmt.Errorf("container %q of %s: %w", name, id, ErrNotFound)
	}
	if c.id == "" {
		return c.Name, "", nil
	}
	text, err := s.rt.ReadLog(ctx, c.id)
	if err != nil {
		return "", "", fmt.Errorf("log of %s/%s: %w", id, c.Name, err)
	}
	if tail > 0 {
		lines := strings.SplitAfter(text, "\n")
		if lines[len(lines)-1] == "" {
			lines = lines[:len(lines)-1]
		}
		if len(lines) > tail {
			text = strings.Join(lines[len(lines)-tail:], "")
		}
	}
	return c.Name, text, nil
}

// IsNotFound reports whether err is ErrNotFound.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
