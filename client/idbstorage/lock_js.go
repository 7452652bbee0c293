//go:build js

package idbstorage

import (
	"errors"
	"fmt"
	"syscall/js"

	"anom/client"
)

// webLock is an exclusive Web Lock this handle holds: the lock lasts until
// the promise the grant callback returned settles, which release does.
type webLock struct {
	release js.Value // resolves the held promise
	done    js.Value // the request's promise, settled once the lock is gone
	failed  js.Func  // the request's rejection handler, released with the lock
}

// lockName is the Web Lock of the database.
func (s *Storage) lockName() string { return "anom-device-storage:" + s.name }

// Lock takes the storage's exclusive Web Lock without waiting: if another
// tab or handle holds it, Lock fails at once with client.ErrInUse. Then,
// under the lock, it checks that the storage was created (fs.ErrNotExist
// if not).
func (s *Storage) Lock() error {
	if s.lock != nil {
		return nil
	}
	locks := js.Global().Get("navigator").Get("locks")
	if !locks.Truthy() {
		// Without a lock two tabs could send from one device; refuse.
		return errors.New("locking device state: this browser has no Web Locks API (is the page served over HTTPS?)")
	}
	type grant struct {
		held bool
		err  error
	}
	ch := make(chan grant, 2)
	var release js.Value
	exec := js.FuncOf(func(_ js.Value, args []js.Value) any {
		release = args[0]
		return nil
	})
	hold := js.Global().Get("Promise").New(exec)
	exec.Release()
	granted := js.FuncOf(func(_ js.Value, args []js.Value) any {
		if args[0].IsNull() {
			ch <- grant{}
			return nil
		}
		ch <- grant{held: true}
		return hold
	})
	failed := js.FuncOf(func(_ js.Value, args []js.Value) any {
		ch <- grant{err: jsErr(args[0])}
		return nil
	})
	var done js.Value
	err := try(func() {
		done = locks.Call("request", s.lockName(), map[string]any{"mode": "exclusive", "ifAvailable": true}, granted)
		// failed only reports a request refused before any grant: the
		// settled promise's value is otherwise ignored.
		done = done.Call("then", js.Null(), failed)
	})
	if err != nil {
		granted.Release()
		failed.Release()
		return fmt.Errorf("locking device state: %w", err)
	}
	g := <-ch
	granted.Release()
	if g.err != nil || !g.held {
		failed.Release()
		release.Invoke()
		if g.err != nil {
			return fmt.Errorf("locking device state: %w", g.err)
		}
		return fmt.Errorf("device state %s is open in another tab or window: %w", s.name, client.ErrInUse)
	}
	// failed lives as long as the request it was given to.
	s.lock = &webLock{release: release, done: done, failed: failed}
	// Checked under the lock, so that no other handle destroys the
	// storage in between.
	ok, err := s.created()
	if err == nil && !ok {
		err = notExist(s.name)
	}
	if err != nil {
		s.Unlock()
		return fmt.Errorf("locking device state: %w", err)
	}
	return nil
}

// Unlock releases the Web Lock if this handle holds it, and returns once
// the browser has let it go.
func (s *Storage) Unlock() error {
	if s.lock == nil {
		return nil
	}
	l := s.lock
	s.lock = nil
	l.release.Invoke()
	// The request's promise settles after the lock is released.
	settled := make(chan struct{}, 1)
	f := js.FuncOf(func(js.Value, []js.Value) any {
		settled <- struct{}{}
		return nil
	})
	l.done.Call("then", f, f)
	<-settled
	f.Release()
	l.failed.Release()
	return nil
}
