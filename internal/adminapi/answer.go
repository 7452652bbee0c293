package adminapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	anomv1 "anom/proto/anom/v1"
)

// CodeOK is Answer.Code of a request that was applied.
const CodeOK = "OK"

// MaxAnswerSize bounds what a client reads of an answer.
const MaxAnswerSize = 256 << 10

// Answer is the server's reply to a request, as JSON. Exactly one result
// field is set on success, matching the request's op; none on refusal.
type Answer struct {
	// Code is CodeOK, or the name of an anomv1.ErrorCode saying why the
	// request was refused (ERROR_CODE_AUTH_FAILED, ERROR_CODE_EXISTS for a
	// replay, ...).
	Code string `json:"code"`
	// Message says what was done, or why not.
	Message string `json:"message"`
	// Op names the request's operation ("" if it could not be decoded).
	Op string `json:"op,omitempty"`
	// Reason, on a refusal by the admin API's own checks, names which
	// (ReasonReplay, ReasonStale, ReasonUnauthorized, ReasonMalformed);
	// RemoteError unwraps it to the matching sentinel error.
	Reason string `json:"reason,omitempty"`

	Distributor *DistributorResult `json:"distributor,omitempty"`
	Codes       *CodesResult       `json:"codes,omitempty"`
	Device      *DeviceResult      `json:"device,omitempty"`
	Approval    *ApprovalResult    `json:"approval,omitempty"`
	Alerts      *AlertsResult      `json:"alerts,omitempty"`
	Devices     *DevicesResult     `json:"devices,omitempty"`
	Users       *UsersResult       `json:"users,omitempty"`
}

// The states of a device or user in DeviceInfo and UserInfo.
const (
	// StateActive: may connect (not revoked, subscription running).
	StateActive = "active"
	// StateRevoked: revoked by an administrator (or on its own request).
	StateRevoked = "revoked"
	// StateWipePending: a wipe command was issued and the device has not
	// confirmed it yet.
	StateWipePending = "wipe pending"
	// StateWiped: the device confirmed the wipe command and is revoked.
	StateWiped = "wiped"
	// StateExpired: the subscription (the certificate's not-after) is
	// over.
	StateExpired = "expired"
)

// DeviceInfo is one device in DevicesResult.
type DeviceInfo struct {
	Device   string `json:"device"`
	Username string `json:"username"`
	State    string `json:"state"`
	// NotAfter is the end of the device's subscription.
	NotAfter time.Time `json:"not_after"`
	// Approved: a further device of its user, approved by a device or
	// an administrator.
	Approved bool `json:"approved,omitempty"`
}

// DevicesResult answers OpDevices: one page of devices, in device ID
// order.
type DevicesResult struct {
	Devices []DeviceInfo `json:"devices"`
	// More: there are further pages; ask again with Next as the cursor.
	More bool   `json:"more"`
	Next string `json:"next,omitempty"`
}

// UserInfo is one user in UsersResult.
type UserInfo struct {
	Username string `json:"username"`
	// State is active if any device is; else, of its devices' states,
	// wipe pending, then expired, then revoked; wiped if every device
	// was wiped.
	State string `json:"state"`
	// Devices counts the user's devices, Active those active.
	Devices int `json:"devices"`
	Active  int `json:"active"`
}

// UsersResult answers OpUsers: one page of users, in username order.
type UsersResult struct {
	Users []UserInfo `json:"users"`
	More  bool       `json:"more"`
	Next  string     `json:"next,omitempty"`
}

// DistributorResult answers OpAddDistributor: the distributor as the
// server now has it.
type DistributorResult struct {
	Name   string `json:"name"`
	Quota  uint32 `json:"quota"`
	Issued uint32 `json:"issued"`
	Serial uint64 `json:"serial"`
}

// CodesResult answers OpImportCodes.
type CodesResult struct {
	Distributor string `json:"distributor"`
	// Imported is how many codes of the batch are new.
	Imported int `json:"imported"`
	// AlreadyImported is how many were imported before and are unused.
	AlreadyImported int `json:"already_imported"`
	// AlreadyUsed is how many were consumed by an activation already:
	// they stay consumed.
	AlreadyUsed int `json:"already_used"`
	// Issued and Quota are the distributor's after the import.
	Issued uint32 `json:"issued"`
	Quota  uint32 `json:"quota"`
}

// DeviceResult answers OpRevoke and OpWipe.
type DeviceResult struct {
	Device string `json:"device"`
	// Already: the device was revoked before (OpRevoke).
	Already bool `json:"already,omitempty"`
	// Online is how many sessions of the device got the wipe command at
	// once (OpWipe); an offline device gets it when it next connects.
	Online int `json:"online,omitempty"`
}

// ApprovalResult answers OpApprove and OpPairing.
type ApprovalResult struct {
	Username string `json:"username"`
	// Fingerprint is the pairing request's, for the admin to compare
	// with the new device's screen.
	Fingerprint string `json:"fingerprint"`
	// Request, for OpPairing, is the pairing request published under the
	// short code, as its long code (identity.ParsePairingCode); the
	// admin's tool checks it against the short code.
	Request string `json:"request,omitempty"`
}

// Refusal reasons of the admin API's own checks, and their errors.
const (
	ReasonReplay       = "replay"
	ReasonStale        = "stale"
	ReasonUnauthorized = "unauthorized"
	ReasonMalformed    = "malformed"
)

var reasonErrors = map[string]error{
	ReasonReplay:       ErrReplay,
	ReasonStale:        ErrStale,
	ReasonUnauthorized: ErrUnauthorized,
	ReasonMalformed:    ErrMalformed,
}

// ReasonOf is the Reason of a refusal caused by err ("" if none applies).
func ReasonOf(err error) string {
	for _, r := range []string{ReasonReplay, ReasonStale, ReasonUnauthorized, ReasonMalformed} {
		if errors.Is(err, reasonErrors[r]) {
			return r
		}
	}
	return ""
}

// AlertsResult answers OpAlerts: one page of the server's alerts.
type AlertsResult struct {
	// Alerts are the server's alert records (JSON objects, see
	// server.Alert), oldest first.
	Alerts []json.RawMessage `json:"alerts"`
	// Next is the sequence to ask for the next page.
	Next uint64 `json:"next"`
	// More: there are alerts from Next on.
	More bool `json:"more,omitempty"`
}

// OK reports whether the request was applied.
func (a *Answer) OK() bool { return a.Code == CodeOK }

// Err returns nil if the request was applied, else a *RemoteError.
func (a *Answer) Err() error {
	if a.OK() {
		return nil
	}
	return &RemoteError{Code: anomv1.ErrorCode(anomv1.ErrorCode_value[a.Code]), Message: a.Message, Reason: reasonErrors[a.Reason]}
}

// RemoteError is a refusal by the server. errors.Is matches its Reason
// (ErrReplay, ErrStale, ErrUnauthorized, ErrMalformed) when it has one.
type RemoteError struct {
	Code    anomv1.ErrorCode
	Message string
	Reason  error // nil unless the admin API's own checks refused
}

func (e *RemoteError) Unwrap() error { return e.Reason }

func (e *RemoteError) Error() string {
	return fmt.Sprintf("the server refused: %s (%s)", e.Message, e.Code)
}

// Encode returns the answer's JSON.
func (a *Answer) Encode() []byte {
	b, err := json.Marshal(a)
	if err != nil {
		panic("adminapi: encoding answer: " + err.Error()) // plain structs only
	}
	return append(b, '\n')
}

// ErrBadAnswer: the server's reply is not a valid Answer.
var ErrBadAnswer = errors.New("adminapi: malformed answer")

// DecodeAnswer strictly decodes an answer: one JSON object of known
// fields, a known code, and a result only on success.
func DecodeAnswer(b []byte) (*Answer, error) {
	if len(b) > MaxAnswerSize {
		return nil, fmt.Errorf("decoding answer: %w: %d bytes", ErrBadAnswer, len(b))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var a Answer
	if err := dec.Decode(&a); err != nil {
		return nil, fmt.Errorf("decoding answer: %w: %w", ErrBadAnswer, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("decoding answer: %w: data after the answer", ErrBadAnswer)
	}
	results := 0
	for _, set := range []bool{a.Distributor != nil, a.Codes != nil, a.Device != nil, a.Approval != nil, a.Alerts != nil, a.Devices != nil, a.Users != nil} {
		if set {
			results++
		}
	}
	switch {
	case a.Code == CodeOK:
		if results != 1 {
			return nil, fmt.Errorf("decoding answer: %w: %d results on success, want 1", ErrBadAnswer, results)
		}
	case a.Code == "" || anomv1.ErrorCode_value[a.Code] == 0:
		return nil, fmt.Errorf("decoding answer: %w: unknown code %q", ErrBadAnswer, a.Code)
	case results != 0:
		return nil, fmt.Errorf("decoding answer: %w: a result with refusal %s", ErrBadAnswer, a.Code)
	}
	if a.Reason != "" && (a.OK() || reasonErrors[a.Reason] == nil) {
		return nil, fmt.Errorf("decoding answer: %w: reason %q with code %s", ErrBadAnswer, a.Reason, a.Code)
	}
	return &a, nil
}
