// Command anom is the single binary of the anom network: server, relay,
// archive, custodian, admin, terminal client, MLS interop tool and demo.
//
// Each subcommand lives in its own file and registers itself in init with
// register; this file only dispatches.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// command is one subcommand of anom.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string) error
}

var commands = map[string]command{}

func register(c command) {
	if _, dup := commands[c.name]; dup {
		panic("anom: duplicate command " + c.name)
	}
	commands[c.name] = c
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: anom <command> [flags]        (anom help <command> [verb] for one command's)\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", n, commands[n].summary)
	}
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

// helpRequested reports whether a command's arguments ask for its help: a
// -h, -help or --help flag before any "--", or the verb help (anom admin
// help).
func helpRequested(args []string) bool {
	if len(args) > 0 && args[0] == "help" {
		return true
	}
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == "-h" || a == "-help" || a == "--help" {
			return true
		}
	}
	return false
}

// usageError reports whether err is a command's usage message (a help
// request its verb dispatcher answered with the list of its verbs).
func usageError(err error) bool {
	return strings.HasPrefix(err.Error(), "usage:") || strings.Contains(err.Error(), ": usage:")
}

func main() {
	args := os.Args[1:]
	if len(args) == 0 {
		usage()
		os.Exit(2)
	}
	if isHelp(args[0]) {
		// anom help: the list; anom help X [VERB...]: X's help, as
		// anom X [VERB...] --help.
		if len(args) == 1 || args[0] != "help" {
			usage()
			os.Exit(0)
		}
		args = append(args[1:], "--help")
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "anom: unknown command %q\n\n", args[0])
		usage()
		os.Exit(2)
	}
	help := helpRequested(args[1:])
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := c.run(ctx, args[1:]); err != nil {
		switch {
		case help && errors.Is(err, flag.ErrHelp):
			os.Exit(0)
		case help && usageError(err):
			fmt.Fprintf(os.Stderr, "anom %s: %v\n", c.name, err)
			os.Exit(0)
		case errors.Is(err, flag.ErrHelp):
			os.Exit(2)
		}
		fmt.Fprintf(os.Stderr, "anom %s: %v\n", c.name, err)
		os.Exit(1)
	}
}
