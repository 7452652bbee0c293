package server

import (
	"context"
	"errors"
	"time"

	"google.golang.org/protobuf/proto"

	anomv1 "anom/proto/anom/v1"
)

var bodyOneof = (&anomv1.Frame{}).ProtoReflect().Descriptor().Oneofs().ByName("body")

// process decodes one frame, handles it and returns the response frame.
// It never panics on bad input: anything malformed gets an error frame.
func (c *session) process(ctx context.Context, data []byte) *anomv1.Frame {
	f, bad := c.decode(data)
	if bad != nil {
		return bad
	}
	return c.handle(ctx, f)
}

// decode decodes one frame; a malformed one gets the error frame to
// answer with.
func (c *session) decode(data []byte) (*anomv1.Frame, *anomv1.Frame) {
	f := &anomv1.Frame{}
	if err := (proto.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(data, f); err != nil {
		c.s.metrics.errors.WithLabelValues(anomv1.ErrorCode_ERROR_CODE_BAD_FRAME.String()).Inc()
		return nil, errorFrame(0, wrapErr(anomv1.ErrorCode_ERROR_CODE_BAD_FRAME, err, "decoding frame"))
	}
	if f.Body == nil {
		return nil, errorFrame(f.Id, errorf(anomv1.ErrorCode_ERROR_CODE_BAD_FRAME, "frame has no body"))
	}
	return f, nil
}

// handle handles a decoded request and returns the response frame.
func (c *session) handle(ctx context.Context, f *anomv1.Frame) *anomv1.Frame {
	kind := kindOf(f)
	start := time.Now()
	resp, err := c.dispatch(ctx, f)
	c.s.metrics.observeRequest(kind, time.Since(start))
	if err != nil {
		w := toWire(err)
		c.s.metrics.errors.WithLabelValues(w.Code.String()).Inc()
		var e *Error
		if !errors.As(err, &e) || e.Code == anomv1.ErrorCode_ERROR_CODE_INTERNAL {
			c.s.log.Error("request failed", "type", kind, "device", c.devHex, "err", err)
		}
		return &anomv1.Frame{Id: f.Id, Body: &anomv1.Frame_Error{Error: w}}
	}
	resp.Id = f.Id
	return resp
}

// dispatch routes a request to its handler.
func (c *session) dispatch(ctx context.Context, f *anomv1.Frame) (*anomv1.Frame, error) {
	if f.Id == 0 {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_BAD_FRAME, "request id 0 is reserved for pushes")
	}
	switch b := f.Body.(type) {
	case *anomv1.Frame_Hello:
		return c.hello(b.Hello)
	case *anomv1.Frame_Auth:
		return c.auth(ctx, b.Auth)
	case *anomv1.Frame_Activate:
		return c.activate(ctx, b.Activate)
	}
	if th, ok := f.Body.(*anomv1.Frame_GetTreeHead); ok && !c.authed.Load() && th.GetTreeHead.GetFromSize() == 0 && c.preauthHead.CompareAndSwap(false, true) {
		// Before it activates, a device checks that this server is of
		// the network its invite pins: the signed tree head's key chains
		// to the root. That is all it may ask unauthenticated, once per
		// connection (a signature, as cheap as the hello's challenge).
		r, err := c.s.treeHead(ctx, th.GetTreeHead)
		return respond(r, err, func(r *anomv1.TreeHead) *anomv1.Frame {
			return &anomv1.Frame{Body: &anomv1.Frame_TreeHead_{TreeHead_: r}}
		})
	}
	if p, ok := f.Body.(*anomv1.Frame_PublishPairing); ok && !c.authed.Load() {
		// A new device publishes its pairing request under a short code
		// for one of its user's devices to fetch (pairing.go).
		return c.publishPairing(ctx, p.PublishPairing)
	}
	if !c.authed.Load() {
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_UNAUTHENTICATED, "authenticate first")
	}
	if ok, wait := allow(c.limiter.requests, c.s.now()); !ok {
		return nil, &Error{Code: anomv1.ErrorCode_ERROR_CODE_RATE_LIMITED, Message: "too many requests", RetryAfterMs: uint32(wait.Milliseconds()) + 1}
	}
	if err := c.checkStillValid(); err != nil {
		return nil, err
	}
	switch b := f.Body.(type) {
	case *anomv1.Frame_UploadKeyPackages:
		r, err := c.s.uploadKeyPackages(ctx, c, b.UploadKeyPackages)
		return respond(r, err, func(r *anomv1.KeyPackagesStored) *anomv1.Frame {
			return &anomv1.Frame{Body: &anomv1.Frame_KeyPackagesStored{KeyPackagesStored: r}}
		})
	case *anomv1.Frame_ClaimKeyPackage:
		r, err := c.s.claimKeyPackage(ctx, c, b.ClaimKeyPackage)
		return respond(r, err, func(r *anomv1.KeyPackage) *anomv1.Frame {
			return &anomv1.Frame{Body: &anomv1.Frame_KeyPackage{KeyPackage: r}}
		})
	case *anomv1.Frame_CreateGroup:
		r, err := c.s.createGroup(ctx, c, b.CreateGroup)
		return respond(r, err, func(r *anomv1.Ok) *anomv1.Frame { return &anomv1.Frame{Body: &anomv1.Frame_Ok{Ok: r}} })
	case *anomv1.Frame_Send:
		r, err := c.s.send(ctx, c, b.Send)
		return respond(r, err, func(r *anomv1.Sent) *anomv1.Frame { return &anomv1.Frame{Body: &anomv1.Frame_Sent{Sent: r}} })
	case *anomv1.Frame_Fetch:
		r, err := c.s.fetch(ctx, c, b.Fetch)
		return respond(r, err, func(r *anomv1.Messages) *anomv1.Frame {
			return &anomv1.Frame{Body: &anomv1.Frame_Messages{Messages: r}}
		})
	case *anomv1.Frame_Ack:
		r, err := c.s.ack(ctx, c, b.Ack)
		return respond(r, err, func(r *anomv1.Ok) *anomv1.Frame { return &anomv1.Frame{Body: &anomv1.Frame_Ok{Ok: r}} })
	case *anomv1.Frame_ListGroups:
		r, err := c.s.listGroups(ctx, c)
		return respond(r, err, func(r *anomv1.Groups) *anomv1.Frame { return &anomv1.Frame{Body: &anomv1.Frame_Groups{Groups: r}} })
	case *anomv1.Frame_Lookup:
		r, err := c.s.lookup(ctx, b.Lookup)
		return respond(r, err, func(r *anomv1.Directory) *anomv1.Frame {
			return &anomv1.Frame{Body: &anomv1.Frame_Directory{Directory: r}}
		})
	case *anomv1.Frame_GetTreeHead:
		r, err := c.s.treeHead(ctx, b.GetTreeHead)
		return respond(r, err, func(r *anomv1.TreeHead) *anomv1.Frame {
			return &anomv1.Frame{Body: &anomv1.Frame_TreeHead_{TreeHead_: r}}
		})
	case *anomv1.Frame_GetLogEntries:
		r, err := c.s.logEntries(ctx, b.GetLogEntries)
		return respond(r, err, func(r *anomv1.LogEntries) *anomv1.Frame {
			return &anomv1.Frame{Body: &anomv1.Frame_LogEntries_{LogEntries_: r}}
		})
	case *anomv1.Frame_WipeConfirm:
		r, err := c.s.wipeConfirm(ctx, c, b.WipeConfirm)
		return respond(r, err, func(r *anomv1.Ok) *anomv1.Frame { return &anomv1.Frame{Body: &anomv1.Frame_Ok{Ok: r}} })
	case *anomv1.Frame_GetEscrowPolicy:
		r, err := c.s.escrowPolicy(ctx)
		return respond(r, err, func(r *anomv1.EscrowPolicy) *anomv1.Frame {
			return &anomv1.Frame{Body: &anomv1.Frame_EscrowPolicy_{EscrowPolicy_: r}}
		})
	case *anomv1.Frame_ReportEscrowMismatch:
		r, err := c.s.reportMismatch(ctx, c, b.ReportEscrowMismatch)
		return respond(r, err, func(r *anomv1.Ok) *anomv1.Frame { return &anomv1.Frame{Body: &anomv1.Frame_Ok{Ok: r}} })
	case *anomv1.Frame_ApproveDevice:
		r, err := c.s.approveDevice(ctx, c, b.ApproveDevice)
		return respond(r, err, func(r *anomv1.Ok) *anomv1.Frame { return &anomv1.Frame{Body: &anomv1.Frame_Ok{Ok: r}} })
	case *anomv1.Frame_FetchPairing:
		r, err := c.s.fetchPairing(ctx, c, b.FetchPairing)
		return respond(r, err, func(r *anomv1.Pairing) *anomv1.Frame { return &anomv1.Frame{Body: &anomv1.Frame_Pairing{Pairing: r}} })
	case *anomv1.Frame_PublishPairing:
		return nil, errorf(anomv1.ErrorCode_ERROR_CODE_INVALID_ARGUMENT, "an activated device has no pairing request to publish")
	case *anomv1.Frame_SetGroupTimer:
		r, err := c.s.setGroupTimer(ctx, c, b.SetGroupTimer)
		return respond(r, err, func(r *anomv1.Ok) *anomv1.Frame { return &anomv1.Frame{Body: &anomv1.Frame_Ok{Ok: r}} })
	case *anomv1.Frame_RequestBlobUpload:
		r, err := c.s.grantBlob(ctx, c, b.RequestBlobUpload)
		return respond(r, err, func(r *anomv1.BlobGrant) *anomv1.Frame {
			return &anomv1.Frame{Body: &anomv1.Frame_BlobGrant{BlobGrant: r}}
		})
	}
	return nil, errorf(anomv1.ErrorCode_ERROR_CODE_BAD_FRAME, "%s is not a request", kindOf(f))
}

// respond builds a response frame from a handler's result.
func respond[T any](r T, err error, mk func(T) *anomv1.Frame) (*anomv1.Frame, error) {
	if err != nil {
		return nil, err
	}
	return mk(r), nil
}

// kindOf names a frame's body, for metrics and errors.
func kindOf(f *anomv1.Frame) string {
	if fd := f.ProtoReflect().WhichOneof(bodyOneof); fd != nil {
		return string(fd.Name())
	}
	return "empty frame"
}
