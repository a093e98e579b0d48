// Package report writes the results of a sync run: ferry's JSON report (--report) and upstream's
// --output-success-images map.
package report

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/ferrypull/ferry/internal/redact"
)

// Destination is the outcome of one source → destination copy.
type Destination struct {
	Ref     string `json:"ref"`
	Status  string `json:"status"` // copied, skipped, failed, planned
	Digest  string `json:"digest,omitempty"`
	Bytes   int64  `json:"bytes"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

// Image groups the destinations of one source image (or one failed rule).
type Image struct {
	Source       string        `json:"source"`
	Digest       string        `json:"digest,omitempty"`
	Status       string        `json:"status"` // the worst destination status: failed > copied > planned > skipped
	Bytes        int64         `json:"bytes"`
	Error        string        `json:"error,omitempty"`
	Destinations []Destination `json:"destinations"`
}

// Summary counts tasks by status.
type Summary struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Seconds  float64   `json:"seconds"`
	Tasks    int       `json:"tasks"`
	Copied   int       `json:"copied"`
	Skipped  int       `json:"skipped"`
	Planned  int       `json:"planned,omitempty"`
	Failed   int       `json:"failed"`
	Bytes    int64     `json:"bytes"`
	DryRun   bool      `json:"dryRun,omitempty"`
}

// Report is the --report document.
type Report struct {
	Summary Summary  `json:"summary"`
	Images  []*Image `json:"images"`
}

// Builder collects outcomes.
type Builder struct {
	r     Report
	index map[string]*Image
	// Secrets, if set, are replaced in every error and message (a registry may echo a password).
	Secrets *redact.Literals
}

// NewBuilder starts a report.
func NewBuilder(started time.Time, dryRun bool) *Builder {
	return &Builder{r: Report{Summary: Summary{Started: started, DryRun: dryRun}}, index: map[string]*Image{}}
}

var rank = map[string]int{"skipped": 0, "planned": 1, "copied": 2, "failed": 3}

// Add records one destination outcome for source (err may be nil).
func (b *Builder) Add(source, digest string, d Destination, err error) {
	if err != nil {
		d.Error = redact.Text(b.Secrets.Redact(err.Error()))
	}
	d.Message = redact.Text(b.Secrets.Redact(d.Message))
	img, ok := b.index[source]
	if !ok {
		img = &Image{Source: source, Status: d.Status}
		b.index[source] = img
		b.r.Images = append(b.r.Images, img)
	}
	if img.Digest == "" {
		img.Digest = digest
	}
	if rank[d.Status] > rank[img.Status] {
		img.Status = d.Status
	}
	if d.Error != "" && img.Error == "" {
		img.Error = d.Error
	}
	img.Bytes = satAdd(img.Bytes, d.Bytes)
	img.Destinations = append(img.Destinations, d)
	s := &b.r.Summary
	s.Tasks++
	s.Bytes = satAdd(s.Bytes, d.Bytes)
	switch d.Status {
	case "copied":
		s.Copied++
	case "skipped":
		s.Skipped++
	case "planned":
		s.Planned++
	default:
		s.Failed++
	}
}

// satAdd adds byte counts without wrapping around (a dry run sums sizes from manifests, which a
// registry may fill with anything).
func satAdd(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// Failed lists the sources with a failed destination, in order.
func (b *Builder) Failed() []*Image {
	var out []*Image
	for _, img := range b.r.Images {
		if img.Status == "failed" {
			out = append(out, img)
		}
	}
	return out
}

// Done finishes the report.
func (b *Builder) Done(finished time.Time) *Report {
	b.r.Summary.Finished = finished
	b.r.Summary.Seconds = finished.Sub(b.r.Summary.Started).Seconds()
	sort.SliceStable(b.r.Images, func(i, j int) bool { return b.r.Images[i].Source < b.r.Images[j].Source })
	return &b.r
}

// WriteJSON writes the report to path.
func (r *Report) WriteJSON(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// SuccessImages is upstream's --output-success-images map: source → destinations copied. Like
// upstream, images skipped as unchanged are not listed (they are in the JSON report).
func (r *Report) SuccessImages() map[string][]string {
	out := map[string][]string{}
	for _, img := range r.Images {
		for _, d := range img.Destinations {
			if d.Status == "copied" {
				out[img.Source] = append(out[img.Source], d.Ref)
			}
		}
	}
	for k := range out {
		sort.Strings(out[k])
	}
	return out
}

// WriteSuccessImages writes the map as JSON when format is "json", else YAML (upstream's rule).
func (r *Report) WriteSuccessImages(path, format string) error {
	m := r.SuccessImages()
	var data []byte
	var err error
	if format == "json" {
		data, err = json.Marshal(m)
	} else {
		data, err = yaml.Marshal(m)
	}
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("write success images: %w", err)
	}
	return nil
}

// Read reads a report written by WriteJSON.
func Read(path string) (*Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read report: %w", err)
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("report %s: %w", path, err)
	}
	return &r, nil
}

// Merge combines the reports of the shards of one run into one with the same schema: every source
// image once (the destinations of an image reported by two shards are joined), the summary summed
// (started: the earliest, finished: the latest). conflicts names every destination written by more
// than one source image across the reports — a mistake that no single shard can see.
func Merge(reports []*Report) (merged *Report, conflicts []string) {
	b := NewBuilder(time.Time{}, false)
	var finished time.Time
	writers := map[string][]string{} // destination ref → sources that wrote or planned it
	for _, r := range reports {
		s := r.Summary
		if b.r.Summary.Started.IsZero() || !s.Started.IsZero() && s.Started.Before(b.r.Summary.Started) {
			b.r.Summary.Started = s.Started
		}
		if s.Finished.After(finished) {
			finished = s.Finished
		}
		b.r.Summary.DryRun = b.r.Summary.DryRun || s.DryRun
		for _, img := range r.Images {
			for _, d := range img.Destinations {
				b.addMerged(img, d)
				if d.Status != "failed" && !slices.Contains(writers[d.Ref], img.Source) {
					writers[d.Ref] = append(writers[d.Ref], img.Source)
				}
			}
			if len(img.Destinations) == 0 { // a failed rule without destinations
				b.addMerged(img, Destination{Status: img.Status, Error: img.Error})
			}
		}
	}
	for ref, srcs := range writers {
		if len(srcs) > 1 {
			sort.Strings(srcs)
			conflicts = append(conflicts, fmt.Sprintf("destination %s is written by %d sources (%s)", ref, len(srcs), strings.Join(srcs, ", ")))
		}
	}
	sort.Strings(conflicts)
	return b.Done(finished), conflicts
}

// addMerged adds a destination already redacted by the shard that wrote it.
func (b *Builder) addMerged(img *Image, d Destination) {
	err := d.Error
	d.Error = ""
	b.Add(img.Source, img.Digest, d, nil)
	if err != "" {
		last := b.index[img.Source]
		last.Destinations[len(last.Destinations)-1].Error = err
		if last.Error == "" {
			last.Error = err
		}
	}
}
