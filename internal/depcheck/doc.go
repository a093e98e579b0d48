// Package depcheck holds the test that enforces ferry's import direction:
// cmd → internal/<feature> → internal/<shared> → api, with the extra rules of STYLE.md §2, and that
// every package has a doc comment.
package depcheck
