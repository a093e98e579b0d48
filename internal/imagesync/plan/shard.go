package plan

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// Shard selects the source repositories one of Count workers copies: each repository goes to exactly
// one shard, by a stable hash of its name (registry/repository), so a repository's tags — and the
// blob mounts between them — stay in one worker. The zero Shard (or Count ≤ 1) selects everything.
type Shard struct {
	Index, Count int
}

// Environment variables read by ParseShard("auto"): the Job's completion index (set by the Job
// controller for Indexed Jobs) and the number of completions (which the Job must pass itself).
const (
	EnvCompletionIndex = "JOB_COMPLETION_INDEX"
	EnvCompletions     = "JOB_COMPLETIONS"
)

// ParseShard reads --shard: "" (no sharding), "i/n" (0 ≤ i < n), or "auto" (i and n from
// EnvCompletionIndex and EnvCompletions, looked up with env).
func ParseShard(v string, env func(string) string) (Shard, error) {
	switch v {
	case "":
		return Shard{}, nil
	case "auto":
		i, n := env(EnvCompletionIndex), env(EnvCompletions)
		if i == "" || n == "" {
			return Shard{}, fmt.Errorf("--shard auto: %s=%q and %s=%q must both be set (an Indexed Job sets the first; pass the completions count as the second)", EnvCompletionIndex, i, EnvCompletions, n)
		}
		s, err := ParseShard(i+"/"+n, env)
		if err != nil {
			return Shard{}, fmt.Errorf("--shard auto (%s=%q, %s=%q): %w", EnvCompletionIndex, i, EnvCompletions, n, err)
		}
		return s, nil
	}
	is, ns, ok := strings.Cut(v, "/")
	i, err1 := strconv.Atoi(is)
	n, err2 := strconv.Atoi(ns)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return Shard{}, fmt.Errorf("--shard %q: want i/n with 0 <= i < n (e.g. 0/3), or auto", v)
	}
	return Shard{Index: i, Count: n}, nil
}

// Has reports whether the source repository (registry/repository, as config.Reference.Name gives
// it) belongs to this shard.
func (s Shard) Has(repo string) bool {
	if s.Count <= 1 {
		return true
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(repo))
	return int(h.Sum32()%uint32(s.Count)) == s.Index
}

// String is "i/n", or "" for no sharding.
func (s Shard) String() string {
	if s.Count <= 1 {
		return ""
	}
	return fmt.Sprintf("%d/%d", s.Index, s.Count)
}
