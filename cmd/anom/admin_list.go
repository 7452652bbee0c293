package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"

	"anom/internal/adminapi"
)

func init() {
	adminVerbs["devices"] = adminVerb{summary: "devices [--json]: list the network's devices with their user and state (active, revoked, wipe pending, wiped, expired)", run: runAdminDevices}
	adminVerbs["users"] = adminVerb{summary: "users [--json]: list the network's users with their state and device counts", run: runAdminUsers}
}

// runAdminDevices lists every device the running server knows, page by
// page, from its store (so every server of a cluster gives the same list).
func runAdminDevices(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("admin devices", flag.ContinueOnError)
	at := adminTargetFlags(fs)
	asJSON := fs.Bool("json", false, "print one JSON object per device")
	if err := fs.Parse(args); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	if !*asJSON {
		fmt.Fprintln(tw, "DEVICE\tUSER\tSTATE\tSUBSCRIPTION UNTIL\tAPPROVED")
	}
	n := 0
	for after := ""; ; {
		ans, err := at.send(ctx, adminapi.OpDevices, []byte(after))
		if err != nil {
			return err
		}
		if ans.Devices == nil {
			return fmt.Errorf("the server's answer carries no devices: %s", ans.Message)
		}
		for _, d := range ans.Devices.Devices {
			n++
			if *asJSON {
				b, _ := json.Marshal(d)
				fmt.Println(string(b))
				continue
			}
			approved := ""
			if d.Approved {
				approved = "further device"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.Device, d.Username, d.State, d.NotAfter.Format("2006-01-02 15:04Z"), approved)
		}
		if !ans.Devices.More || ans.Devices.Next <= after {
			break
		}
		after = ans.Devices.Next
	}
	if *asJSON {
		return nil
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%d devices\n", n)
	return nil
}

// runAdminUsers lists every user the running server knows.
func runAdminUsers(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("admin users", flag.ContinueOnError)
	at := adminTargetFlags(fs)
	asJSON := fs.Bool("json", false, "print one JSON object per user")
	if err := fs.Parse(args); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	if !*asJSON {
		fmt.Fprintln(tw, "USER\tSTATE\tDEVICES\tACTIVE")
	}
	n := 0
	for after := ""; ; {
		ans, err := at.send(ctx, adminapi.OpUsers, []byte(after))
		if err != nil {
			return err
		}
		if ans.Users == nil {
			return fmt.Errorf("the server's answer carries no users: %s", ans.Message)
		}
		for _, u := range ans.Users.Users {
			n++
			if *asJSON {
				b, _ := json.Marshal(u)
				fmt.Println(string(b))
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", u.Username, u.State, u.Devices, u.Active)
		}
		if !ans.Users.More || ans.Users.Next <= after {
			break
		}
		after = ans.Users.Next
	}
	if *asJSON {
		return nil
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "%d users\n", n)
	return nil
}
