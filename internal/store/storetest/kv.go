package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"anom/internal/store"
)

func testKVBasic(t *testing.T, h Harness) {
	s, _ := open(t, h)
	ctx := ctxT(t)
	_, err := s.Get(ctx, "dir", "dev1")
	wantErr(t, "get missing", err, store.ErrNotFound)

	r1 := must[uint64](t, "create")(s.Create(ctx, "dir", "dev1", []byte("one")))
	if r1 == 0 {
		t.Fatal("create returned revision 0")
	}
	_, err = s.Create(ctx, "dir", "dev1", []byte("again"))
	wantErr(t, "create existing", err, store.ErrExists)
	e := must[store.Entry](t, "get")(s.Get(ctx, "dir", "dev1"))
	if string(e.Value) != "one" || e.Revision != r1 || e.Key != "dev1" || e.Bucket != "dir" {
		t.Fatalf("get = %+v, want value one at revision %d", e, r1)
	}

	_, err = s.Update(ctx, "dir", "dev1", []byte("x"), r1+1000)
	wantErr(t, "update stale", err, store.ErrRevisionMismatch)
	_, err = s.Update(ctx, "dir", "nope", []byte("x"), r1)
	wantErr(t, "update missing", err, store.ErrNotFound)
	r2 := must[uint64](t, "update")(s.Update(ctx, "dir", "dev1", []byte("two"), r1))
	if r2 <= r1 {
		t.Fatalf("update revision %d not above %d", r2, r1)
	}
	_, err = s.Update(ctx, "dir", "dev1", []byte("x"), r1)
	wantErr(t, "update with old revision", err, store.ErrRevisionMismatch)

	r3 := must[uint64](t, "put")(s.Put(ctx, "dir", "dev1", []byte("three")))
	if r3 <= r2 {
		t.Fatalf("put revision %d not above %d", r3, r2)
	}
	wantErr(t, "delete stale", s.Delete(ctx, "dir", "dev1", r2), store.ErrRevisionMismatch)
	wantErr(t, "delete", s.Delete(ctx, "dir", "dev1", r3), nil)
	_, err = s.Get(ctx, "dir", "dev1")
	wantErr(t, "get deleted", err, store.ErrNotFound)
	wantErr(t, "delete missing unconditionally", s.Delete(ctx, "dir", "dev1", 0), nil)
	wantErr(t, "delete missing conditionally", s.Delete(ctx, "dir", "dev1", r3), store.ErrNotFound)

	// A re-created key never reuses a revision, so stale CAS cannot succeed.
	r4 := must[uint64](t, "re-create")(s.Create(ctx, "dir", "dev1", []byte("four")))
	if r4 <= r3 {
		t.Fatalf("re-create revision %d not above %d", r4, r3)
	}
	_, err = s.Update(ctx, "dir", "dev1", []byte("x"), r1)
	wantErr(t, "update with revision of earlier incarnation", err, store.ErrRevisionMismatch)

	// Buckets are separate.
	_, err = s.Get(ctx, "other", "dev1")
	wantErr(t, "get in other bucket", err, store.ErrNotFound)
	must[uint64](t, "create in other bucket")(s.Create(ctx, "other", "dev1", []byte("o")))
	e = must[store.Entry](t, "get")(s.Get(ctx, "dir", "dev1"))
	if string(e.Value) != "four" {
		t.Fatalf("value changed by another bucket: %q", e.Value)
	}
}

func testKVNames(t *testing.T, h Harness) {
	s, _ := open(t, h)
	ctx := ctxT(t)
	long := strings.Repeat("k", store.MaxKeyLen)
	tests := []struct {
		bucket, key string
		want        error
	}{
		{"dir", "a", nil},
		{"dir", "A-z_0=9/x.y", nil},
		{"b_-9", "k", nil},
		{"dir", long, nil},
		{"dir", long + "k", store.ErrTooLarge},
		{"", "k", store.ErrInvalid},
		{"a.b", "k", store.ErrInvalid},
		{"a b", "k", store.ErrInvalid},
		{strings.Repeat("b", store.MaxBucketLen+1), "k", store.ErrInvalid},
		{"dir", "", store.ErrInvalid},
		{"dir", ".a", store.ErrInvalid},
		{"dir", "a.", store.ErrInvalid},
		{"dir", "a..b", store.ErrInvalid},
		{"dir", "a b", store.ErrInvalid},
		{"dir", "a*", store.ErrInvalid},
		{"dir", "a>", store.ErrInvalid},
		{"dir", "a\x00b", store.ErrInvalid},
		{"dir", "ä", store.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%q/%.20q", tc.bucket, tc.key), func(t *testing.T) {
			_, err := s.Put(ctx, tc.bucket, tc.key, []byte("v"))
			wantErr(t, "put", err, tc.want)
			_, err = s.Get(ctx, tc.bucket, tc.key)
			if tc.want == nil {
				wantErr(t, "get", err, nil)
			} else {
				wantErr(t, "get", err, tc.want)
			}
		})
	}
}

func testKVValues(t *testing.T, h Harness) {
	s, _ := open(t, h)
	ctx := ctxT(t)
	tests := []struct {
		name string
		size int
		want error
	}{
		{"empty", 0, nil},
		{"small", 10, nil},
		{"max", store.MaxValueSize, nil},
		{"over", store.MaxValueSize + 1, store.ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := bytes.Repeat([]byte{0xA5}, tc.size)
			_, err := s.Put(ctx, "vals", tc.name, v)
			wantErr(t, "put", err, tc.want)
			if tc.want != nil {
				_, err = s.Get(ctx, "vals", tc.name)
				wantErr(t, "get after failed put", err, store.ErrNotFound)
				return
			}
			e := must[store.Entry](t, "get")(s.Get(ctx, "vals", tc.name))
			if !bytes.Equal(e.Value, v) {
				t.Fatalf("value of %d bytes came back as %d bytes", len(v), len(e.Value))
			}
		})
	}
	// The store keeps its own copy of values.
	v := []byte("original")
	must[uint64](t, "put")(s.Put(ctx, "vals", "copy", v))
	copy(v, "XXXXXXXX")
	e := must[store.Entry](t, "get")(s.Get(ctx, "vals", "copy"))
	if string(e.Value) != "original" {
		t.Fatalf("store aliases the caller's value: %q", e.Value)
	}
	copy(e.Value, "YYYYYYYY")
	e = must[store.Entry](t, "get")(s.Get(ctx, "vals", "copy"))
	if string(e.Value) != "original" {
		t.Fatalf("store aliases returned values: %q", e.Value)
	}
}

func testKVList(t *testing.T, h Harness) {
	s, _ := open(t, h)
	ctx := ctxT(t)
	keys := []string{"a", "a.b", "a.c", "a0", "ab", "b", "b.a", "c/d"}
	for i, k := range keys {
		must[uint64](t, "put")(s.Put(ctx, "lst", k, []byte{byte(i)}))
	}
	must[uint64](t, "put other bucket")(s.Put(ctx, "lst2", "a.zzz", nil))
	tests := []struct {
		prefix string
		want   []string
	}{
		{"", keys},
		{"a", []string{"a", "a.b", "a.c", "a0", "ab"}},
		{"a.", []string{"a.b", "a.c"}},
		{"b", []string{"b", "b.a"}},
		{"c/", []string{"c/d"}},
		{"z", nil},
	}
	for _, tc := range tests {
		for _, limit := range []int{0, 1, 2, 3} {
			t.Run(fmt.Sprintf("%q/limit%d", tc.prefix, limit), func(t *testing.T) {
				var got []string
				after := ""
				for pages := 0; ; pages++ {
					if pages > len(keys)+1 {
						t.Fatal("paging does not end")
					}
					page, more, err := s.List(ctx, "lst", store.ListOptions{Prefix: tc.prefix, After: after, Limit: limit})
					wantErr(t, "list", err, nil)
					if limit > 0 && len(page) > limit {
						t.Fatalf("page of %d entries, limit %d", len(page), limit)
					}
					for _, e := range page {
						if e.Bucket != "lst" || e.Revision == 0 {
							t.Fatalf("entry %+v", e)
						}
						got = append(got, e.Key)
					}
					if !more {
						break
					}
					if len(page) == 0 {
						t.Fatal("empty page with more")
					}
					after = page[len(page)-1].Key
				}
				if fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Fatalf("listed %q, want %q", got, tc.want)
				}
			})
		}
	}
	_, _, err := s.List(ctx, "lst", store.ListOptions{Prefix: "a*"})
	wantErr(t, "list bad prefix", err, store.ErrInvalid)
	_, _, err = s.List(ctx, "lst", store.ListOptions{Limit: -1})
	wantErr(t, "list negative limit", err, store.ErrInvalid)
}

func testKVTxn(t *testing.T, h Harness) {
	s, _ := open(t, h)
	ctx := ctxT(t)
	rc := must[uint64](t, "create code")(s.Create(ctx, "codes", "C1", []byte("30d")))
	ry := must[uint64](t, "create y")(s.Create(ctx, "misc", "y", []byte("y")))

	// All or nothing: the failing op 2 undoes ops 0 and 1.
	_, err := s.Txn(ctx,
		store.DeleteOp("codes", "C1", rc),
		store.CreateOp("devices", "D1", []byte("dev")),
		store.UpdateOp("misc", "y", []byte("y2"), ry+1000),
	)
	var te *store.TxnError
	if !errors.As(err, &te) || te.Index != 2 || !errors.Is(err, store.ErrRevisionMismatch) {
		t.Fatalf("failing txn: error %v, want TxnError at index 2 matching ErrRevisionMismatch", err)
	}
	must[store.Entry](t, "code still there")(s.Get(ctx, "codes", "C1"))
	_, err = s.Get(ctx, "devices", "D1")
	wantErr(t, "device of failed txn", err, store.ErrNotFound)

	revs, err := s.Txn(ctx,
		store.DeleteOp("codes", "C1", rc),
		store.CreateOp("devices", "D1", []byte("dev")),
		store.UpdateOp("misc", "y", []byte("y2"), ry),
		store.CheckOp("misc", "absent", 0),
		store.PutOp("misc", "z", []byte("z")),
	)
	wantErr(t, "txn", err, nil)
	if len(revs) != 5 || revs[0] != 0 || revs[1] == 0 || revs[2] <= ry || revs[4] == 0 {
		t.Fatalf("txn revisions %v", revs)
	}
	for _, c := range []struct{ b, k, v string }{{"devices", "D1", "dev"}, {"misc", "y", "y2"}, {"misc", "z", "z"}} {
		e := must[store.Entry](t, "get "+c.k)(s.Get(ctx, c.b, c.k))
		if string(e.Value) != c.v {
			t.Fatalf("%s/%s = %q, want %q", c.b, c.k, e.Value, c.v)
		}
	}
	_, err = s.Get(ctx, "codes", "C1")
	wantErr(t, "consumed code", err, store.ErrNotFound)

	tests := []struct {
		name string
		ops  []store.Op
		want error
	}{
		{"empty", nil, store.ErrInvalid},
		{"duplicate key", []store.Op{store.PutOp("a", "k", nil), store.DeleteOp("a", "k", 0)}, store.ErrInvalid},
		{"too many", make([]store.Op, store.MaxTxnOps+1), store.ErrTooLarge},
		{"bad kind", []store.Op{{Kind: 99, Bucket: "a", Key: "k"}}, store.ErrInvalid},
		{"update rev 0", []store.Op{store.UpdateOp("a", "k", nil, 0)}, store.ErrInvalid},
		{"bad key", []store.Op{store.PutOp("a", "..", nil)}, store.ErrInvalid},
		{"check exists", []store.Op{store.CheckOp("misc", "z", 0)}, store.ErrExists},
		{"check missing", []store.Op{store.CheckOp("misc", "nope", 1)}, store.ErrNotFound},
		{"check stale", []store.Op{store.CheckOp("misc", "z", revs[4]+1000)}, store.ErrRevisionMismatch},
		{"check ok", []store.Op{store.CheckOp("misc", "z", revs[4])}, nil},
		{"create existing", []store.Op{store.PutOp("misc", "new", nil), store.CreateOp("devices", "D1", nil)}, store.ErrExists},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Txn(ctx, tc.ops...)
			wantErr(t, "txn", err, tc.want)
		})
	}
	_, err = s.Get(ctx, "misc", "new")
	wantErr(t, "put of failed txn", err, store.ErrNotFound)
}
