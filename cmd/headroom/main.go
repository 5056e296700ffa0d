// Command headroom is the gpu-headroom CLI: offline tools that share code
// with the controller (forecast backtests, and later plan previews and
// simulations). It never talks to a cluster unless a subcommand says so.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches args and returns the exit code; main stays a one-liner so
// tests can call run directly.
func run(args []string, stdout, stderr io.Writer) int {
	if err := dispatch(rootCommands(), args, stdout, stderr); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			fmt.Fprintln(stderr, "headroom:", ee.msg)
			return ee.code
		}
		if err != errUsage {
			fmt.Fprintln(stderr, "headroom:", err)
		}
		return 2
	}
	return 0
}
