package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"

	"anom/internal/adminapi"
	"anom/internal/netsetup"
	"anom/internal/server"
)

// The server's side of the escrow in the data directory:
//
//	archive.token   bearer token of the archive pulling the escrow outbox, 0600
//	alerts/         one JSON file per alert the server raised (anom admin
//	                alerts asks the running server, which keeps them in its
//	                store)
//
// The server's countersigning key is its own key certified by the root
// (countersign.key and .cert, see internal/netsetup/onlinekeys.go); its id in
// countersignatures is "NAME/SERIAL". Custodians and the archive take it
// from the transparency log; `anom admin escrow server-key` prints ID=HEX
// for the record.

func init() {
	adminVerbs["alerts"] = adminVerb{summary: "list the alerts the running server raised (false escrow records reported by recipients)", run: runAdminAlerts}
}

// archiveToken reads DATA/archive.token. anom admin init makes it; a
// network made before that gets one here on first use, unless the server
// shares its state with others (shared): each server's copy of the
// directory would then make a token of its own, and the archive, pulling
// through whichever server answers, would be refused by the others.
func archiveToken(d dataDir, shared bool) (string, error) {
	path := d.Path(netsetup.ArchiveTokenFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if shared {
			return "", fmt.Errorf("%s is missing: the servers sharing NATS need one archive token, the same file in each server's copy of the data directory (make it once: head -c 32 /dev/urandom | xxd -p -c 64 > %s, then copy it to every server)", path, path)
		}
		if err := netsetup.MakeArchiveToken(d); err != nil {
			return "", fmt.Errorf("making the archive token: %w", err)
		}
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return "", fmt.Errorf("reading archive token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 32 {
		return "", fmt.Errorf("archive token in %s is too short", path)
	}
	return tok, nil
}

// escrowServerKey is the server's countersigning key id and public key,
// ID=HEX, for the record (custodians and the archive take the key from its
// logged certificate).
func escrowServerKey(d dataDir) (string, error) {
	_, c, err := d.CountersignKey()
	if err != nil {
		return "", err
	}
	return server.EscrowServerID(c) + "=" + hex.EncodeToString(c.Key), nil
}

func runAdminAlerts(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("admin alerts", flag.ContinueOnError)
	at := adminTargetFlags(fs)
	asJSON := fs.Bool("json", false, "print the alerts as JSON lines")
	if err := fs.Parse(args); err != nil {
		return err
	}
	// From the running server's store, so every server of a cluster
	// gives the same list.
	n := 0
	for from := uint64(1); ; {
		ans, err := at.send(ctx, adminapi.OpAlerts, adminapi.EncodeAlertsFrom(from))
		if err != nil {
			return err
		}
		if ans.Alerts == nil {
			return fmt.Errorf("the server's answer carries no alerts: %s", ans.Message)
		}
		for _, raw := range ans.Alerts.Alerts {
			n++
			if *asJSON {
				fmt.Println(string(raw))
				continue
			}
			var a server.Alert
			if err := json.Unmarshal(raw, &a); err != nil {
				return fmt.Errorf("reading alert: %w", err)
			}
			if a.Kind == server.AlertKindBadProof {
				fmt.Printf("%s  %s: device %s sent an escrow record whose proof does not bind its R to it (an R copied from another record?) in group %s; the server refused it\n",
					a.Time.Format("2006-01-02 15:04:05Z"), a.Kind, a.Sender, a.Group)
				continue
			}
			fmt.Printf("%s  %s: device %s sent a false escrow record (message %d of group %s, %s differs); reported by %s (%s)\n",
				a.Time.Format("2006-01-02 15:04:05Z"), a.Kind, a.Sender, a.Seq, a.Group, a.Field, a.ReporterUser, a.Reporter)
		}
		if !ans.Alerts.More || ans.Alerts.Next <= from {
			break
		}
		from = ans.Alerts.Next
	}
	if n == 0 && !*asJSON {
		fmt.Println("no alerts")
	}
	return nil
}

// bearerTransport adds a bearer token to every request.
type bearerTransport struct {
	token string
	base  http.RoundTripper
}

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	base := b.base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r)
}
