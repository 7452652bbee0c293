package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"anom/identity"
	"anom/internal/adminapi"
	"anom/internal/store"
)

// Listing the network for an administrator (adminapi.OpDevices and
// OpUsers): every device and user with its state, read from the store,
// page by page so that an answer stays within adminapi.MaxAnswerSize.

// devicesPerPage and usersPerPage bound one answer (a device is about 150
// bytes of JSON, a user about 80).
const (
	devicesPerPage = 500
	usersPerPage   = 500
)

// deviceState is the state of the device key (hex) with certificate cert,
// at now: wiped, revoked, wipe pending, expired or active, the first that
// applies.
func (s *Server) deviceState(ctx context.Context, key string, cert *identity.DeviceCertificate, now time.Time) (string, error) {
	has := func(bucket string) (bool, error) {
		_, err := s.st.Get(ctx, bucket, key)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("state of device %s: %w", key, err)
		}
		return true, nil
	}
	for _, c := range []struct{ bucket, state string }{
		{bucketWiped, adminapi.StateWiped},
		{bucketRevoked, adminapi.StateRevoked},
		{bucketWipes, adminapi.StateWipePending},
	} {
		ok, err := has(c.bucket)
		if err != nil {
			return "", err
		}
		if ok {
			return c.state, nil
		}
	}
	if !now.Before(cert.NotAfter) {
		return adminapi.StateExpired, nil
	}
	return adminapi.StateActive, nil
}

// deviceInfo reads the device key (hex) and its state.
func (s *Server) deviceInfo(ctx context.Context, e store.Entry, now time.Time) (adminapi.DeviceInfo, error) {
	var rec deviceRecord
	if err := decodeRecord(e, &rec); err != nil {
		return adminapi.DeviceInfo{}, err
	}
	cert, err := identity.DecodeDeviceCertificate(rec.Cert)
	if err != nil {
		return adminapi.DeviceInfo{}, fmt.Errorf("device %s: %w: %w", e.Key, store.ErrCorrupt, err)
	}
	st, err := s.deviceState(ctx, e.Key, cert, now)
	if err != nil {
		return adminapi.DeviceInfo{}, err
	}
	return adminapi.DeviceInfo{Device: e.Key, Username: cert.Username, State: st, NotAfter: cert.NotAfter.UTC(), Approved: len(rec.Approval) > 0}, nil
}

// devicesPage lists the devices after the device ID (hex) after.
func (s *Server) devicesPage(ctx context.Context, after string) (adminapi.DevicesResult, error) {
	res := adminapi.DevicesResult{Devices: []adminapi.DeviceInfo{}}
	es, more, err := s.st.List(ctx, bucketDevices, store.ListOptions{After: after, Limit: devicesPerPage})
	if err != nil {
		return res, fmt.Errorf("listing devices: %w", err)
	}
	now := s.now()
	for _, e := range es {
		d, err := s.deviceInfo(ctx, e, now)
		if err != nil {
			return res, err
		}
		res.Devices = append(res.Devices, d)
	}
	if more && len(es) > 0 {
		res.More, res.Next = true, es[len(es)-1].Key
	}
	return res, nil
}

// usersPage lists the users after the username after, each with the state
// its devices make (adminapi.UserInfo).
func (s *Server) usersPage(ctx context.Context, after string) (adminapi.UsersResult, error) {
	res := adminapi.UsersResult{Users: []adminapi.UserInfo{}}
	es, more, err := s.st.List(ctx, bucketUsers, store.ListOptions{After: after, Limit: usersPerPage})
	if err != nil {
		return res, fmt.Errorf("listing users: %w", err)
	}
	now := s.now()
	for _, e := range es {
		var u userRecord
		if err := decodeRecord(e, &u); err != nil {
			return res, err
		}
		info := adminapi.UserInfo{Username: e.Key, Devices: len(u.Devices)}
		count := map[string]int{}
		for _, dev := range u.Devices {
			de, err := s.st.Get(ctx, bucketDevices, dev)
			if err != nil {
				return res, fmt.Errorf("device %s of user %s: %w", dev, e.Key, err)
			}
			d, err := s.deviceInfo(ctx, de, now)
			if err != nil {
				return res, err
			}
			count[d.State]++
		}
		info.Active = count[adminapi.StateActive]
		info.State = userState(count, len(u.Devices))
		res.Users = append(res.Users, info)
	}
	if more && len(es) > 0 {
		res.More, res.Next = true, es[len(es)-1].Key
	}
	return res, nil
}

// userState is a user's state from how many of its n devices are in each
// state: active if any is; else wipe pending, expired, then revoked if any
// is; wiped if all are.
func userState(count map[string]int, n int) string {
	for _, st := range []string{adminapi.StateActive, adminapi.StateWipePending, adminapi.StateExpired, adminapi.StateRevoked} {
		if count[st] > 0 {
			return st
		}
	}
	if n > 0 && count[adminapi.StateWiped] == n {
		return adminapi.StateWiped
	}
	return adminapi.StateRevoked // no devices left
}
