package main

import (
	"flag"
	"fmt"
	"io"
	"runtime/debug"
)

// version is set at link time: -ldflags "-X main.version=v0.1.0".
var version = "dev"

func versionCommand() command {
	return command{
		Summary: "print the version",
		Run: func(args []string, stdout, stderr io.Writer) error {
			fs := flag.NewFlagSet("headroom version", flag.ContinueOnError)
			fs.SetOutput(stderr)
			if err := fs.Parse(args); err != nil {
				return errUsage
			}
			rev := ""
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						rev = " " + s.Value
					}
				}
			}
			_, err := fmt.Fprintf(stdout, "headroom %s%s\n", version, rev)
			return err
		},
	}
}
