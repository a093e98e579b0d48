package engine

// The pipeline: tasks through check and copy stages, in rounds, with bounded parallelism.

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferrypull/ferry/internal/imagesync/plan"
)

// RunOptions configure Run.
type RunOptions struct {
	// Jobs is the number of images copied at once (upstream --proc).
	Jobs int
	// CheckJobs is the number of HEAD comparisons at once (default 4×Jobs, at least 16).
	CheckJobs int
	// Rounds is the number of extra rounds for failed tasks (upstream --retries).
	Rounds int
	// OnRound is called before each retry round (for the compat log line).
	OnRound func(round int)
	// OnResult is called for each finished task of each round.
	OnResult func(Result)
}

// stage runs f for a task with panic recovery, filling in the bookkeeping of res.
func (e *Engine) stage(res *Result, counter *atomic.Int64, start time.Time, f func() error) {
	defer func() {
		if p := recover(); p != nil {
			res.Err = fmt.Errorf("internal error: %v\n%s", p, debug.Stack())
		}
		res.Bytes = counter.Load()
		res.Duration = time.Since(start)
		if res.Err != nil {
			res.Status = Failed
		}
	}()
	res.Err = f()
}

// Run copies every task, then re-runs failed tasks up to o.Rounds times, and returns the final
// result of every task in task order. Tasks flow through two stages connected by a channel: many
// cheap HEAD comparisons at once, and o.Jobs transfers at once; unchanged images never reach the
// second stage.
func (e *Engine) Run(ctx context.Context, tasks []plan.Task, o RunOptions) []Result {
	defer e.bg.Wait() // the spot checks SpotCheck started end with the run
	if o.Jobs <= 0 {
		o.Jobs = 1
	}
	if o.CheckJobs <= 0 {
		o.CheckJobs = max(4*o.Jobs, 16)
	}
	results := make([]Result, len(tasks))
	todo := make([]int, len(tasks))
	for i := range tasks {
		todo[i] = i
	}
	type pending struct {
		i       int
		st      *checked
		counter *atomic.Int64
		start   time.Time
	}
	for round := 0; round <= o.Rounds && len(todo) > 0; round++ {
		if round > 0 && o.OnRound != nil {
			o.OnRound(round)
		}
		work := make(chan int)
		transfers := make(chan pending)
		var checkers, copiers sync.WaitGroup
		finish := func(i int) {
			if o.OnResult != nil {
				o.OnResult(results[i])
			}
		}
		for range min(o.CheckJobs, len(todo)) {
			checkers.Add(1)
			go func() {
				defer checkers.Done()
				for i := range work {
					p := pending{i: i, counter: &atomic.Int64{}, start: time.Now()}
					results[i] = Result{Task: tasks[i]}
					e.stage(&results[i], p.counter, p.start, func() error {
						var err error
						p.st, err = e.check(ctx, tasks[i], &results[i])
						if err == nil && p.st.done && e.o.Referrers && results[i].Digest != "" {
							err = e.copyReferrers(ctx, tasks[i], p.st.srcRepo, p.st.dstRepo, results[i].Digest, p.counter)
						}
						return err
					})
					if results[i].Status == Failed || p.st == nil || p.st.done {
						finish(i)
						continue
					}
					transfers <- p
				}
			}()
		}
		for range min(o.Jobs, len(todo)) {
			copiers.Add(1)
			go func() {
				defer copiers.Done()
				for p := range transfers {
					e.stage(&results[p.i], p.counter, p.start, func() error {
						return e.transfer(ctx, tasks[p.i], p.st, &results[p.i], p.counter)
					})
					finish(p.i)
				}
			}()
		}
		for _, i := range todo {
			work <- i
		}
		close(work)
		checkers.Wait()
		close(transfers)
		copiers.Wait()
		var next []int
		for _, i := range todo {
			if results[i].Status == Failed && ctx.Err() == nil {
				next = append(next, i)
			}
		}
		todo = next
	}
	return results
}
