package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"

	"anom/internal/natsfanout"
	"anom/internal/store"
	"anom/internal/store/jetstream"
	"anom/internal/store/pebble"
)

// storeFlags choose where anom server keeps its state: Pebble in the data
// directory (one server alone), or NATS JetStream (--nats), which several
// stateless servers of one network share.
type storeFlags struct {
	nats, creds, ca, cert, key, prefix string
	replicas                           int
}

func addStoreFlags(fs *flag.FlagSet) *storeFlags {
	f := &storeFlags{}
	fs.StringVar(&f.nats, "nats", "", "keep the network's state in NATS JetStream at these servers (URL[,URL...], any nodes of one cluster) instead of Pebble in --data: several servers with copies of one network's data directory then serve it together (the directory must already hold the network: anom admin init, or a first run without --nats)")
	fs.StringVar(&f.creds, "nats-creds", "", "a NATS credentials file (JWT and NKey seed) for --nats")
	fs.StringVar(&f.ca, "nats-ca", "", "PEM file of the CAs of the NATS servers' certificates (turns TLS to NATS on)")
	fs.StringVar(&f.cert, "nats-cert", "", "a client certificate (PEM) for NATS servers that require one; needs --nats-key")
	fs.StringVar(&f.key, "nats-key", "", "the private key of --nats-cert (PEM)")
	fs.StringVar(&f.prefix, "nats-prefix", jetstream.DefaultPrefix, "names of the network's streams in NATS ([A-Za-z0-9_-]): networks sharing a NATS account need different ones")
	fs.IntVar(&f.replicas, "nats-replicas", jetstream.DefaultReplicas, "replicas of each stream (1 to 5; 3 survives the loss of one node)")
	return f
}

// check reports flag combinations that cannot work, before anything is
// opened or made.
func (f *storeFlags) check() error {
	if f.nats == "" {
		for _, s := range []string{f.creds, f.ca, f.cert, f.key} {
			if s != "" {
				return errors.New("--nats-creds, --nats-ca, --nats-cert and --nats-key need --nats")
			}
		}
		return nil
	}
	if (f.cert == "") != (f.key == "") {
		return errors.New("--nats-cert and --nats-key go together")
	}
	if len(f.urls()) == 0 {
		return errors.New("--nats: no URL given")
	}
	return nil
}

func (f *storeFlags) urls() []string {
	var out []string
	for _, u := range strings.Split(f.nats, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// open opens the store the flags name, and with NATS the fan-out that
// carries pushes between the servers sharing it: on the NATS core subject
// <prefix>.push of the store's connection, authenticated with a key
// derived from the network's blob key (secret), which every server of the
// network holds. The caller closes the fan-out, then the store.
func (f *storeFlags) open(ctx context.Context, d dataDir, secret []byte, log *slog.Logger) (store.Store, *natsfanout.Fanout, error) {
	if f.nats == "" {
		st, err := pebble.Open(d.Path("store"), pebble.Options{Logger: log.With("part", "store")})
		if errors.Is(err, pebble.ErrLocked) {
			return nil, nil, fmt.Errorf("another server holds %s: stop it first, or give this one another --data", d.Path("store"))
		}
		return st, nil, err
	}
	st, err := jetstream.Open(ctx, jetstream.Options{
		URLs: f.urls(), CredsFile: f.creds, TLSCAFile: f.ca, TLSCertFile: f.cert, TLSKeyFile: f.key,
		Prefix: f.prefix, Replicas: f.replicas, Name: "anom server", Logger: log.With("part", "store"),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("--nats %s: %w", f.nats, err)
	}
	fan, err := clusterFanout(st, secret, log)
	if err != nil {
		st.Close()
		return nil, nil, fmt.Errorf("--nats: %w (blob.key in %s)", err, d.Path())
	}
	return st, fan, nil
}

// clusterFanout returns the fan-out that carries pushes between the
// servers sharing the JetStream store st (anom server --nats, and anom
// bench --cluster): the NATS core subject <prefix>.push of the store's
// connection, batches authenticated under a key derived from secret.
func clusterFanout(st *jetstream.Store, secret []byte, log *slog.Logger) (*natsfanout.Fanout, error) {
	return natsfanout.New(natsfanout.Options{Conn: st.Conn(), Prefix: st.Prefix(), Secret: secret, Logger: log.With("part", "fanout")})
}
