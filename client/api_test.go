package client_test

import (
	"bufio"
	"bytes"
	"fmt"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
)

// apiForbidden reports whether the package at path may not appear in the
// exported API of package client: anom's internal packages, the generated
// wire code (and the protobuf runtime it stands on) and the WebSocket
// library are implementation details an application must not depend on.
func apiForbidden(path string) bool {
	for _, p := range []string{"anom/internal", "anom/proto", "github.com/coder/websocket", "google.golang.org/protobuf"} {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

// TestExportedAPIHasNoInternalTypes: no exported identifier of package
// client (function, method of an exported type, field, interface method,
// variable, constant) mentions a type of an internal package, of the
// generated protobuf code or of github.com/coder/websocket, on the native
// build and on the browser's (js/wasm), whose files differ; nor do the
// exported fields and methods of the other anom packages' types (identity,
// mls) that the API hands out.
func TestExportedAPIHasNoInternalTypes(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles package client for two platforms")
	}
	for _, p := range []struct {
		name string
		env  []string
	}{{"native", nil}, {"js-wasm", []string{"GOOS=js", "GOARCH=wasm"}}} {
		t.Run(p.name, func(t *testing.T) {
			for _, leak := range apiLeaks(loadExport(t, "anom/client", p.env)) {
				t.Error(leak)
			}
		})
	}
}

// loadExport type-checks nothing itself: it has the go command compile
// path (for the platform env sets) and reads the compiler's export data,
// which holds exactly the package's API.
func loadExport(t *testing.T, path string, env []string) *types.Package {
	t.Helper()
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		if goTool, err = exec.LookPath("go"); err != nil {
			t.Skip("no go command to compile package client with")
		}
	}
	cmd := exec.Command(goTool, "list", "-export", "-deps", "-f", "{{.ImportPath}}\t{{.Export}}", path)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -export %s: %v\n%s", path, err, stderr.Bytes())
	}
	exports := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if p, file, ok := strings.Cut(sc.Text(), "\t"); ok && file != "" {
			exports[p] = file
		}
	}
	lookup := func(p string) (io.ReadCloser, error) {
		file, ok := exports[p]
		if !ok {
			return nil, fmt.Errorf("no export data for %q", p)
		}
		return os.Open(file)
	}
	pkg, err := importer.ForCompiler(token.NewFileSet(), "gc", lookup).Import(path)
	if err != nil {
		t.Fatalf("reading the export data of %s: %v", path, err)
	}
	return pkg
}

// apiLeaks lists, sorted, each place the exported API of pkg mentions a
// forbidden package's type.
func apiLeaks(pkg *types.Package) []string {
	w := &apiWalker{pkg: pkg, seen: map[types.Type]bool{}, found: map[string]bool{}}
	scope := pkg.Scope()
	// Types first, so that a leak is named after the type that has it
	// rather than after the first function that uses the type.
	for _, typePass := range []bool{true, false} {
		for _, name := range scope.Names() {
			obj := scope.Lookup(name)
			if _, isType := obj.(*types.TypeName); !obj.Exported() || isType != typePass {
				continue
			}
			where := pkg.Name() + "." + name
			if typePass {
				w.named(where, obj.Type())
			} else {
				w.typ(where, obj.Type())
			}
		}
	}
	out := make([]string, 0, len(w.found))
	for s := range w.found {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

type apiWalker struct {
	pkg   *types.Package
	seen  map[types.Type]bool
	found map[string]bool
}

// named walks a type declared by the package (or an alias the package
// exports): its definition and its exported methods.
func (w *apiWalker) named(where string, t types.Type) {
	n, ok := t.(*types.Named)
	if !ok || n.Obj().Pkg() != w.pkg {
		w.typ(where, t)
		return
	}
	if w.seen[n] {
		return
	}
	w.seen[n] = true
	w.typ(where, n.Underlying())
	mset := types.NewMethodSet(types.NewPointer(n))
	for i := 0; i < mset.Len(); i++ {
		m := mset.At(i).Obj()
		if m.Exported() {
			w.typ(where+"."+m.Name(), m.Type())
		}
	}
}

// typ walks the type t, met at where.
func (w *apiWalker) typ(where string, t types.Type) {
	switch t := t.(type) {
	case *types.Alias:
		w.typ(where, types.Unalias(t))
	case *types.Named:
		if p := t.Obj().Pkg(); p != nil && apiForbidden(p.Path()) {
			w.found[fmt.Sprintf("%s mentions %s.%s", where, p.Path(), t.Obj().Name())] = true
			return
		}
		if args := t.TypeArgs(); args != nil {
			for i := 0; i < args.Len(); i++ {
				w.typ(where, args.At(i))
			}
		}
		if p := t.Obj().Pkg(); p != nil && p != w.pkg && strings.HasPrefix(p.Path(), "anom/") && !w.seen[t] {
			// A type of another anom package (identity, mls) that the
			// API hands out must not lead to an internal one either.
			w.seen[t] = true
			in := where + " (" + p.Path() + "." + t.Obj().Name()
			w.typ(in+")", t.Underlying())
			mset := types.NewMethodSet(types.NewPointer(t))
			for i := 0; i < mset.Len(); i++ {
				if m := mset.At(i).Obj(); m.Exported() {
					w.typ(in+"."+m.Name()+")", m.Type())
				}
			}
		}
		if t.Obj().Pkg() == w.pkg && !t.Obj().Exported() {
			// An unexported type of the package reached from the API
			// exposes its exported fields and methods all the same. (An
			// exported one is walked under its own name.)
			w.named(where, t)
		}
	case *types.Pointer:
		w.typ(where, t.Elem())
	case *types.Slice:
		w.typ(where, t.Elem())
	case *types.Array:
		w.typ(where, t.Elem())
	case *types.Map:
		w.typ(where, t.Key())
		w.typ(where, t.Elem())
	case *types.Chan:
		w.typ(where, t.Elem())
	case *types.Signature:
		for _, tup := range []*types.Tuple{t.Params(), t.Results()} {
			for i := 0; i < tup.Len(); i++ {
				w.typ(where, tup.At(i).Type())
			}
		}
	case *types.Struct:
		for i := 0; i < t.NumFields(); i++ {
			f := t.Field(i)
			if f.Exported() {
				w.typ(where+"."+f.Name(), f.Type())
			}
		}
	case *types.Interface:
		for i := 0; i < t.NumMethods(); i++ {
			m := t.Method(i)
			if m.Exported() {
				w.typ(where+"."+m.Name(), m.Type())
			}
		}
		for i := 0; i < t.NumEmbeddeds(); i++ {
			w.typ(where, t.EmbeddedType(i))
		}
	case *types.TypeParam:
		w.typ(where, t.Constraint())
	case *types.Union:
		for i := 0; i < t.Len(); i++ {
			w.typ(where, t.Term(i).Type())
		}
	}
}

// TestAPILeaksFinds: the walker of TestExportedAPIHasNoInternalTypes
// finds a forbidden type wherever the API can carry one, and passes over
// unexported identifiers.
func TestAPILeaksFinds(t *testing.T) {
	const src = `package client

import (
	ws "github.com/coder/websocket"
	"anom/identity"
)

func Cert() identity.Cert { return identity.Cert{} }
type Field struct{ C *ws.Conn; c ws.Conn }
type Method struct{}
func (Method) Get() ws.Conn { return ws.Conn{} }
func (*Method) get() ws.Conn { return ws.Conn{} }
type Iface interface{ Get() []ws.Conn }
type hidden struct{ C map[string]ws.Conn }
func Reach() hidden { return hidden{} }
type Alias = ws.Conn
type Generic[T any] struct{ V T }
var Inst Generic[ws.Conn]
func Func(chan ws.Conn) {}
func unexported(ws.Conn) {}
type Fine struct{ c ws.Conn }
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "api.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A stand-in for the WebSocket library: one type, Conn.
	wsPkg := types.NewPackage("github.com/coder/websocket", "websocket")
	conn := types.NewTypeName(token.NoPos, wsPkg, "Conn", nil)
	types.NewNamed(conn, types.NewStruct(nil, nil), nil)
	wsPkg.Scope().Insert(conn)
	wsPkg.MarkComplete()
	pkgs := map[string]*types.Package{wsPkg.Path(): wsPkg}
	conf := types.Config{Importer: importerFunc(func(path string) (*types.Package, error) {
		if p, ok := pkgs[path]; ok {
			return p, nil
		}
		return nil, fmt.Errorf("no package %q here", path)
	})}
	// And an anom package whose type leads to it.
	const idSrc = `package identity

import ws "github.com/coder/websocket"

type Cert struct{}
func (Cert) Head() ws.Conn { return ws.Conn{} }
func Free() ws.Conn { return ws.Conn{} }
`
	idf, err := parser.ParseFile(fset, "identity.go", idSrc, 0)
	if err != nil {
		t.Fatal(err)
	}
	if pkgs["anom/identity"], err = conf.Check("anom/identity", fset, []*ast.File{idf}, nil); err != nil {
		t.Fatal(err)
	}
	pkg, err := conf.Check("anom/client", fset, []*ast.File{f}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"client.Cert (anom/identity.Cert.Head) mentions github.com/coder/websocket.Conn"}
	for _, where := range []string{"Alias", "Field.C", "Func", "Iface.Get", "Inst", "Method.Get", "Reach.C"} {
		want = append(want, "client."+where+" mentions github.com/coder/websocket.Conn")
	}
	slices.Sort(want)
	if got := apiLeaks(pkg); !slices.Equal(got, want) {
		t.Errorf("leaks found:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

type importerFunc func(path string) (*types.Package, error)

func (f importerFunc) Import(path string) (*types.Package, error) { return f(path) }
