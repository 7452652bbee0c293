package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sort"
)

// anom admin: network administration. Verbs register in adminVerbs from
// their own files. Verbs that act on a running server (distributor, codes,
// revoke, wipe, approve) send it signed requests through its admin API
// (admin_client.go) and print its answer; the others work on files.

type adminVerb struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

var adminVerbs = map[string]adminVerb{}

func init() {
	register(command{name: "admin", summary: "network administration (anom admin VERB): " + adminVerbList, run: runAdmin})
}

// adminVerbList names every admin verb, for the top-level list of commands.
const adminVerbList = "adminkey, alerts, approve, codes, devices, distributor, escrow, init, invite, revoke, rotate, users, warrant, wipe"

func adminUsage() {
	fmt.Fprintln(os.Stderr, "usage: anom admin <verb> [flags]\n\nverbs:")
	var names []string
	for n := range adminVerbs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-12s %s\n", n, adminVerbs[n].summary)
	}
}

func runAdmin(ctx context.Context, args []string) error {
	if len(args) == 0 || isHelp(args[0]) {
		adminUsage()
		return flag.ErrHelp
	}
	v, ok := adminVerbs[args[0]]
	if !ok {
		adminUsage()
		return fmt.Errorf("unknown verb %q", args[0])
	}
	return v.run(ctx, args[1:])
}

// dataFlag adds the --data flag (default $ANOM_DATA, else ./anom-data).
func dataFlag(fs *flag.FlagSet) *string {
	def := os.Getenv("ANOM_DATA")
	if def == "" {
		def = "anom-data"
	}
	return fs.String("data", def, "data directory (env ANOM_DATA)")
}

// parseInterspersed parses flags that may follow positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
