package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ferrypull/ferry/internal/imagesync/report"
	"github.com/ferrypull/ferry/internal/operator"
)

// newReportCommand is `image-syncer report merge`: the shards' --report files into one.
func newReportCommand(s operator.Streams) *cobra.Command {
	rep := &cobra.Command{Use: "report", Short: "work with --report files"}
	var out string
	merge := &cobra.Command{
		Use:   "merge REPORT.json...",
		Short: "combine the --report files of a sharded run into one (same schema); exit non-zero if any image failed or two sources wrote one destination",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var reports []*report.Report
			for _, p := range args {
				r, err := report.Read(p)
				if err != nil {
					return err
				}
				reports = append(reports, r)
			}
			merged, conflicts := report.Merge(reports)
			if out != "" {
				if err := merged.WriteJSON(out); err != nil {
					return err
				}
			} else {
				data, err := json.MarshalIndent(merged, "", "  ")
				if err != nil {
					return err
				}
				fmt.Fprintln(s.Out, string(data))
			}
			sum := merged.Summary
			fmt.Fprintf(s.Err, "merged %d reports: %d tasks, %d copied, %d skipped, %d failed, %d bytes\n",
				len(reports), sum.Tasks, sum.Copied, sum.Skipped, sum.Failed, sum.Bytes)
			var errs []string
			if sum.Failed > 0 {
				errs = append(errs, fmt.Sprintf("%d task(s) failed", sum.Failed))
			}
			errs = append(errs, conflicts...)
			if len(errs) > 0 {
				return errors.New(strings.Join(errs, "; "))
			}
			return nil
		},
	}
	merge.Flags().StringVarP(&out, "output", "o", "", "write the merged report here (default: standard output)")
	rep.AddCommand(merge)
	return rep
}
