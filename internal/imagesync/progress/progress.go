// Package progress shows sync progress: mpb bars on a terminal, periodic plain lines otherwise.
package progress

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// Reporter receives task and byte progress.
type Reporter interface {
	// SetTotal sets the number of images.
	SetTotal(n int)
	// TaskDone marks one image finished.
	TaskDone()
	// AddBytes adds bytes streamed.
	AddBytes(n int64)
	// Writer is where log lines must go while progress is shown (so bars are not torn).
	Writer() io.Writer
	// Stop ends the display.
	Stop()
}

// Nop shows nothing.
type Nop struct{ W io.Writer }

func (Nop) SetTotal(int)        {}
func (Nop) TaskDone()           {}
func (Nop) AddBytes(int64)      {}
func (n Nop) Writer() io.Writer { return n.W }
func (Nop) Stop()               {}

type bars struct {
	p      *mpb.Progress
	images *mpb.Bar
	bytes  *mpb.Bar
}

// NewBars draws an image bar and a byte counter on w (a terminal).
func NewBars(w io.Writer) Reporter {
	p := mpb.New(mpb.WithOutput(w), mpb.WithWidth(40), mpb.WithAutoRefresh())
	b := &bars{p: p}
	b.images = p.AddBar(0,
		mpb.PrependDecorators(decor.Name("images "), decor.CountersNoUnit("%d/%d")),
		mpb.AppendDecorators(decor.Percentage()))
	b.bytes = p.New(0, mpb.NopStyle(),
		mpb.PrependDecorators(decor.Name("copied "), decor.Current(decor.SizeB1000(0), "% .1f")),
		mpb.AppendDecorators(decor.AverageSpeed(decor.SizeB1000(0), "% .1f")))
	return b
}

func (b *bars) SetTotal(n int)    { b.images.SetTotal(int64(n), false) }
func (b *bars) TaskDone()         { b.images.Increment() }
func (b *bars) AddBytes(n int64)  { b.bytes.IncrInt64(n) }
func (b *bars) Writer() io.Writer { return b.p }
func (b *bars) Stop() {
	b.images.SetTotal(-1, true)
	b.bytes.SetTotal(-1, true)
	b.p.Wait()
}

type lines struct {
	w           io.Writer
	logf        func(string)
	total, done atomic.Int64
	bytes       atomic.Int64
	stop        chan struct{}
	wg          sync.WaitGroup
	start       time.Time
}

// NewLines prints "progress: n/total images, X bytes" through logf every interval (a display
// timer, not synchronisation) and once at Stop.
func NewLines(w io.Writer, logf func(string), interval time.Duration) Reporter {
	l := &lines{w: w, logf: logf, stop: make(chan struct{}), start: time.Now()}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-t.C:
				l.print()
			}
		}
	}()
	return l
}

func (l *lines) print() {
	l.logf(fmt.Sprintf("progress: %d/%d images, %d bytes copied, %s elapsed", l.done.Load(), l.total.Load(), l.bytes.Load(), time.Since(l.start).Round(time.Second)))
}

func (l *lines) SetTotal(n int)    { l.total.Store(int64(n)) }
func (l *lines) TaskDone()         { l.done.Add(1) }
func (l *lines) AddBytes(n int64)  { l.bytes.Add(n) }
func (l *lines) Writer() io.Writer { return l.w }
func (l *lines) Stop() {
	close(l.stop)
	l.wg.Wait()
}
