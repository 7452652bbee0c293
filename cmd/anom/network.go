package main

import (
	"io"
	"time"

	"anom/identity"
	"anom/internal/netsetup"
)

// The data directory and the network's keys are internal/netsetup's;
// these names keep the commands' code short.

type (
	dataDir     = netsetup.Dir
	networkInfo = netsetup.NetworkInfo
	onlineRole  = netsetup.OnlineRole
)

var (
	directoryRole   = netsetup.DirectoryRole
	countersignRole = netsetup.CountersignRole
)

func writeSecret(path string, data []byte) error { return netsetup.WriteSecret(path, data) }
func writePublic(path string, data []byte) error { return netsetup.WritePublic(path, data) }
func onlineKeyName(network string) string        { return netsetup.OnlineKeyName(network) }

const (
	defaultNetworkName   = netsetup.DefaultName
	adminKeyFile         = netsetup.AdminKeyFile
	adminCertFile        = netsetup.AdminCertFile
	defaultAdminValidity = netsetup.DefaultAdminValidity
)

func initNetwork(d dataDir, name string, hosts []string, w io.Writer) error {
	return netsetup.Init(d, name, hosts, w)
}

func makeAdminKey(dir, name string, root *identity.RootKey, valid time.Duration, rand io.Reader) (*identity.OnlineKeyCertificate, error) {
	return netsetup.MakeAdminKey(dir, name, root, valid, rand)
}

func refuseInside(path, dir string) error { return netsetup.RefuseInside(path, dir) }
