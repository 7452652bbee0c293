package server

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/protobuf/proto"

	"anom/internal/store"
	anomv1 "anom/proto/anom/v1"
)

// Escrow alerts: a recipient that re-derived a message's escrow record and
// found it differs from the one the sender sent reports it
// (ReportEscrowMismatch). The server checks the report against its log,
// keeps it in the log "escrow.alerts", logs it, and writes it as a JSON
// file to Config.AlertDir for the administrator (`anom admin alerts`).

const (
	logAlerts = "escrow.alerts"
	maxField  = 64
)

// Alert is one report of a false escrow record, or of a record the server
// refused because its proof does not bind its R to it.
type Alert struct {
	Time         time.Time `json:"time"`
	Kind         string    `json:"kind"` // AlertKindMismatch or AlertKindBadProof
	Reporter     string    `json:"reporter"`
	ReporterUser string    `json:"reporter_username"`
	Group        string    `json:"group"` // hex
	Seq          uint64    `json:"seq"`
	Sender       string    `json:"sender"` // device hex
	Field        string    `json:"field"`  // the first part of the record that differs
	MessageTime  time.Time `json:"message_time"`
}

// Alert kinds.
const (
	// AlertKindMismatch: a recipient reports a false escrow record.
	AlertKindMismatch = "escrow-mismatch"
	// AlertKindBadProof: the server refused a device's escrow record whose
	// proof π does not bind its R to it (an R copied from another record);
	// Reporter is "server" and Sender the device.
	AlertKindBadProof = "escrow-bad-proof"
)

func (s *Server) reportMismatch(ctx context.Context, c *session, req *anomv1.ReportEscrowMismatch) (*anomv1.Ok, error) {
	gh, err := checkGroupID(req.GetGroupId())
	if err != nil {
		return nil, err
	}
	if len(req.GetField()) > maxField {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "field of %d bytes", len(req.GetField()))
	}
	mr, err := s.membership(ctx, c.devHex, gh)
	if err != nil {
		return nil, err
	}
	if req.GetSeq() < mr.Joined {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_FORBIDDEN, "message %d is from before this device joined", req.GetSeq())
	}
	es, err := s.st.Read(ctx, groupLog(gh), req.GetSeq(), 1)
	if err != nil {
		return nil, storeError(err, "reading group log")
	}
	if len(es) == 0 || es[0].Seq != req.GetSeq() {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_NOT_FOUND, "message %d is not in the group's log", req.GetSeq())
	}
	var gm anomv1.GroupMessage
	if err := proto.Unmarshal(es[0].Data, &gm); err != nil {
		return nil, fmt.Errorf("decoding group %s entry %d: %w: %w", gh, es[0].Seq, store.ErrCorrupt, err)
	}
	if !bytes.Equal(gm.GetSenderDevice(), req.GetSenderDevice()) {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "message %d was sent by another device", req.GetSeq())
	}
	a := Alert{Time: s.now().UTC(), Kind: AlertKindMismatch, Reporter: c.devHex, ReporterUser: c.cert.Username, Group: gh,
		Seq: req.GetSeq(), Sender: hex.EncodeToString(gm.GetSenderDevice()), Field: req.GetField(), MessageTime: es[0].Time.UTC()}
	if err := s.raiseAlert(ctx, a); err != nil {
		return nil, err
	}
	return &anomv1.Ok{}, nil
}

// raiseAlert records an alert durably, logs it and writes it to AlertDir.
func (s *Server) raiseAlert(ctx context.Context, a Alert) error {
	b, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encoding alert: %w", err)
	}
	seq, err := s.st.Append(ctx, logAlerts, b)
	if err != nil {
		return storeError(err, "recording alert")
	}
	what := "a recipient reports a false escrow record"
	if a.Kind == AlertKindBadProof {
		what = "a device sent an escrow record whose proof does not bind its R (an R copied from another record?)"
	}
	s.log.Warn("ALERT: "+what, "alert", seq, "sender", a.Sender, "group", a.Group,
		"seq", a.Seq, "field", a.Field, "reporter", a.Reporter, "reporter_username", a.ReporterUser)
	if s.cfg.AlertDir != "" {
		if err := writeAlertFile(s.cfg.AlertDir, seq, b); err != nil {
			s.log.Error("writing alert file", "alert", seq, "err", err)
		}
	}
	return nil
}

func writeAlertFile(dir string, seq uint64, b []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, fmt.Sprintf("%020d.json", seq)))
}

// Alerts returns the alerts recorded so far, oldest first, from the alert
// with sequence number from on (1 is the first).
func (s *Server) Alerts(ctx context.Context, from uint64) ([]Alert, error) {
	var out []Alert
	for {
		es, err := s.st.Read(ctx, logAlerts, max(from, 1), 0)
		if err != nil {
			return nil, fmt.Errorf("reading alerts: %w", err)
		}
		if len(es) == 0 {
			return out, nil
		}
		for _, e := range es {
			var a Alert
			if err := json.Unmarshal(e.Data, &a); err != nil {
				return nil, fmt.Errorf("reading alert %d: %w: %w", e.Seq, store.ErrCorrupt, err)
			}
			out = append(out, a)
			from = e.Seq + 1
		}
	}
}
