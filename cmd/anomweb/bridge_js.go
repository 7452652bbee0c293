//go:build js

package main

import (
	"encoding/json"
	"fmt"
	"runtime/debug"
	"sync"
	"syscall/js"
)

// The JavaScript side of the anom object: promise-returning methods whose
// Go work runs in a goroutine (IndexedDB and the network answer through
// the browser's event loop, which a JavaScript callback must not block).

var (
	jsPromise = js.Global().Get("Promise")
	jsJSON    = js.Global().Get("JSON")
	jsError   = js.Global().Get("Error")
)

// toJS turns a Go value into a JavaScript one through JSON; nil is
// undefined, and a js.Value is itself.
func toJS(v any) js.Value {
	switch v := v.(type) {
	case nil:
		return js.Undefined()
	case js.Value:
		return v // made for the page already (a Uint8Array)
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("anomweb: encoding a result: %v", err))
	}
	return jsJSON.Call("parse", string(b))
}

// errorValue is the Error a promise rejects with: its message is err's
// text, its code property errorCode's.
func errorValue(err error) js.Value {
	e := jsError.New(err.Error())
	e.Set("code", errorCode(err))
	return e
}

// promise makes a JavaScript function returning a promise of what fn
// returns (its error rejects it; a panic too, as code "error").
func promise(fn func(args []js.Value) (any, error)) js.Func {
	return js.FuncOf(func(_ js.Value, args []js.Value) any {
		args = append([]js.Value(nil), args...)
		var resolve, reject js.Value
		exec := js.FuncOf(func(_ js.Value, a []js.Value) any {
			resolve, reject = a[0], a[1]
			return nil
		})
		p := jsPromise.New(exec)
		exec.Release()
		go func() {
			defer func() {
				if r := recover(); r != nil {
					reject.Invoke(errorValue(fmt.Errorf("anomweb: internal error: %v\n%s", r, debug.Stack())))
				}
			}()
			v, err := fn(args)
			if err != nil {
				reject.Invoke(errorValue(err))
				return
			}
			resolve.Invoke(toJS(v))
		}()
		return p
	})
}

// Arguments.

func argString(args []js.Value, i int, name string) (string, error) {
	if i >= len(args) || args[i].Type() != js.TypeString {
		return "", coded(codeBadArgument, "%s: want a string", name)
	}
	return args[i].String(), nil
}

// argGroupID reads argument i, a group ID in hex.
func argGroupID(args []js.Value, i int) ([]byte, error) {
	s, err := argString(args, i, "groupId")
	if err != nil {
		return nil, err
	}
	return parseGroupID(s)
}

func argStrings(args []js.Value, i int, name string) ([]string, error) {
	if i >= len(args) || !args[i].InstanceOf(js.Global().Get("Array")) {
		return nil, coded(codeBadArgument, "%s: want an array of strings", name)
	}
	out := make([]string, args[i].Length())
	for j := range out {
		v := args[i].Index(j)
		if v.Type() != js.TypeString {
			return nil, coded(codeBadArgument, "%s[%d]: want a string", name, j)
		}
		out[j] = v.String()
	}
	return out, nil
}

// argObject returns argument i as an object, or undefined if absent.
func argObject(args []js.Value, i int, name string) (js.Value, error) {
	if i >= len(args) || args[i].IsUndefined() || args[i].IsNull() {
		return js.Undefined(), nil
	}
	if args[i].Type() != js.TypeObject {
		return js.Undefined(), coded(codeBadArgument, "%s: want an object", name)
	}
	return args[i], nil
}

// optInt reads the number property name of o (undefined: def).
func optInt(o js.Value, name string, def int) (int, error) {
	if o.IsUndefined() {
		return def, nil
	}
	v := o.Get(name)
	switch v.Type() {
	case js.TypeUndefined, js.TypeNull:
		return def, nil
	case js.TypeNumber:
		f := v.Float()
		if f != float64(int(f)) || f < 0 {
			return 0, coded(codeBadArgument, "%s: want a whole number, not %v", name, f)
		}
		return int(f), nil
	}
	return 0, coded(codeBadArgument, "%s: want a number", name)
}

// eventQueue hands events to the page's callback in order, from its own
// goroutine, so that the client never waits for the page.
type eventQueue struct {
	mu      sync.Mutex
	q       []eventJSON
	handler js.Value
	wake    chan struct{}
}

// maxQueued bounds the events kept for a page that set no handler.
const maxQueued = 10000

func newEventQueue() *eventQueue {
	q := &eventQueue{wake: make(chan struct{}, 1), handler: js.Undefined()}
	go q.run()
	return q
}

func (q *eventQueue) push(e eventJSON) {
	q.mu.Lock()
	if len(q.q) >= maxQueued {
		q.q = q.q[1:] // a page that never listens does not grow memory
	}
	q.q = append(q.q, e)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// setHandler sets the callback (a function, or null for none).
func (q *eventQueue) setHandler(fn js.Value) {
	q.mu.Lock()
	q.handler = fn
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *eventQueue) run() {
	for range q.wake {
		for {
			q.mu.Lock()
			h := q.handler
			if len(q.q) == 0 || h.Type() != js.TypeFunction {
				// Events wait for a handler: none is lost between
				// unlock and the page's onEvent.
				q.mu.Unlock()
				break
			}
			e := q.q[0]
			q.q = q.q[1:]
			q.mu.Unlock()
			deliver(h, e)
		}
	}
}

// deliver calls the page's handler; an exception it throws is logged to
// the console, not fatal.
func deliver(h js.Value, e eventJSON) {
	defer func() {
		if r := recover(); r != nil {
			js.Global().Get("console").Call("error", "anom.onEvent handler threw:", fmt.Sprint(r))
		}
	}()
	h.Invoke(toJS(e))
}

// optString reads the string property name of o (undefined: def).
func optString(o js.Value, name, def string) (string, error) {
	if o.IsUndefined() {
		return def, nil
	}
	v := o.Get(name)
	switch v.Type() {
	case js.TypeUndefined, js.TypeNull:
		return def, nil
	case js.TypeString:
		return v.String(), nil
	}
	return "", coded(codeBadArgument, "%s: want a string", name)
}
