package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
)

func init() {
	adminVerbs["init"] = adminVerb{summary: "make a network: root key and TLS CA key in DATA.root/, admin key in DATA.admin/, server certificate and root-certified online keys in DATA, empty escrow policy", run: runAdminInit}
}

func runAdminInit(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("admin init", flag.ContinueOnError)
	data := dataFlag(fs)
	name := fs.String("name", defaultNetworkName, "network (server) name that devices sign in authentication")
	hosts := fs.String("hosts", "localhost,127.0.0.1", "comma-separated hostnames and IPs for the server certificate (localhost and 127.0.0.1 are always included)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	d := dataDir(*data)
	if _, err := os.Stat(d.Path("network.json")); err == nil {
		return fmt.Errorf("%s already holds a network", *data)
	}
	if _, err := os.Stat(d.RootPath("root.key")); err == nil {
		return fmt.Errorf("%s already holds a root key", d.RootDir())
	}
	return initNetwork(d, *name, strings.Split(*hosts, ","), os.Stdout)
}
