package main

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// command is one node of the subcommand tree: either a leaf with Run, or a
// group with Sub. To add a subcommand, add an entry to rootCommands (or to a
// group's Sub) in its own file's constructor.
type command struct {
	Summary string
	Run     func(args []string, stdout, stderr io.Writer) error
	Sub     map[string]command
}

// errUsage means usage was already printed; run exits 2 without repeating it.
var errUsage = errors.New("usage")

func rootCommands() map[string]command {
	return map[string]command{
		"version":  versionCommand(),
		"simulate": simulateCommand(),
		"plan":     planCommand(),
		"doctor":   doctorCommand(),
		"forecast": {
			Summary: "forecast tools",
			Sub: map[string]command{
				"backtest": backtestCommand(),
			},
		},
	}
}

// dispatch walks args down the tree until it reaches a leaf.
func dispatch(cmds map[string]command, args []string, stdout, stderr io.Writer, path ...string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(cmds, stderr, path)
		return errUsage
	}
	c, ok := cmds[args[0]]
	if !ok {
		usage(cmds, stderr, path)
		return fmt.Errorf("unknown command %q", strings.Join(append(path, args[0]), " "))
	}
	if c.Run != nil {
		return c.Run(args[1:], stdout, stderr)
	}
	return dispatch(c.Sub, args[1:], stdout, stderr, append(path, args[0])...)
}

func usage(cmds map[string]command, w io.Writer, path []string) {
	prefix := strings.Join(append([]string{"headroom"}, path...), " ")
	fmt.Fprintf(w, "usage: %s <command> [flags]\n\ncommands:\n", prefix)
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, cmds[n].Summary)
	}
}
