package doccheck

import (
	"go/ast"
	"go/constant"
	"go/types"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/tools/go/packages"
)

const exitcodePath = "github.com/backy/backy/pkg/exitcode"

var (
	exitSectionRe = regexp.MustCompile(`(?ms)^# EXIT STATUS\n(.*?)(?:^# |\z)`)
	exitRowRe     = regexp.MustCompile(`(?m)^\| (\d+) \|(?: ([A-Za-z]+) \|)?`)
)

// documentedCodes reads the EXIT STATUS tables of the man pages (but
// backy-check's, which has the Nagios codes): the codes they list, and the
// names of the table with a name column.
func documentedCodes(t *testing.T) (codes map[int64]bool, names map[string]int64) {
	t.Helper()
	codes, names = map[int64]bool{}, map[string]int64{}
	pages, _ := filepath.Glob("../../man/*.md")
	for _, p := range pages {
		if filepath.Base(p) == "backy-check.1.md" {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sec := exitSectionRe.FindSubmatch(b)
		if sec == nil {
			continue
		}
		for _, m := range exitRowRe.FindAllStringSubmatch(string(sec[1]), -1) {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			codes[n] = true
			if m[2] != "" {
				names[m[2]] = n
			}
		}
	}
	if len(codes) == 0 || len(names) == 0 {
		t.Fatalf("no exit codes found in %d man pages", len(pages))
	}
	return codes, names
}

// TestSentinelsCarryDocumentedCodes walks every package under pkg/: each
// exported error variable must carry an exit code (made by exitcode.New, or
// of a type with an ExitCode method), and every code given to exitcode.New
// or exitcode.With, or returned by an ExitCode method, must be one the man
// pages document. The exitcode constants must match the names of the shared
// table.
func TestSentinelsCarryDocumentedCodes(t *testing.T) {
	codes, names := documentedCodes(t)
	cfg := &packages.Config{
		Mode:       packages.NeedName | packages.NeedTypes | packages.NeedSyntax | packages.NeedTypesInfo,
		Dir:        "../..",
		BuildFlags: []string{"-tags", buildTags},
	}
	pkgs, err := packages.Load(cfg, "./pkg/...")
	if err != nil {
		t.Fatal(err)
	}
	if packages.PrintErrors(pkgs) > 0 {
		t.Fatal("packages did not load")
	}
	errType := types.Universe.Lookup("error").Type().Underlying().(*types.Interface)
	var sentinels, checked int
	for _, p := range pkgs {
		if p.PkgPath == exitcodePath {
			for _, name := range p.Types.Scope().Names() {
				c, ok := p.Types.Scope().Lookup(name).(*types.Const)
				if !ok {
					continue
				}
				v, _ := constant.Int64Val(c.Val())
				if want, ok := names[name]; !ok || want != v {
					t.Errorf("exitcode.%s = %d, but the man pages' table says %d (listed: %v)", name, v, want, ok)
				}
			}
			continue
		}
		// checkCode reports a code that the man pages do not list.
		checkCode := func(e ast.Expr, what string) {
			tv := p.TypesInfo.Types[e]
			if tv.Value == nil {
				t.Errorf("%s: %s: the exit code is not a constant", p.Fset.Position(e.Pos()), what)
				return
			}
			v, _ := constant.Int64Val(tv.Value)
			if !codes[v] {
				t.Errorf("%s: %s: exit code %d is in no man page", p.Fset.Position(e.Pos()), what, v)
			}
			checked++
		}
		fromNew := map[*types.Var]bool{}
		for _, f := range p.Syntax {
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.CallExpr:
					if fn := calledFunc(p.TypesInfo, n); fn != nil && fn.Pkg().Path() == exitcodePath && (fn.Name() == "New" || fn.Name() == "With") {
						checkCode(n.Args[0], "exitcode."+fn.Name())
					}
				case *ast.FuncDecl:
					if n.Recv != nil && n.Name.Name == "ExitCode" && n.Body != nil {
						ast.Inspect(n.Body, func(n ast.Node) bool {
							if r, ok := n.(*ast.ReturnStmt); ok && len(r.Results) == 1 {
								checkCode(r.Results[0], "ExitCode")
							}
							return true
						})
					}
				case *ast.ValueSpec:
					for i, name := range n.Names {
						if i < len(n.Values) {
							if call, ok := n.Values[i].(*ast.CallExpr); ok {
								if fn := calledFunc(p.TypesInfo, call); fn != nil && fn.Pkg().Path() == exitcodePath && fn.Name() == "New" {
									if v, ok := p.TypesInfo.Defs[name].(*types.Var); ok {
										fromNew[v] = true
									}
								}
							}
						}
					}
				}
				return true
			})
		}
		scope := p.Types.Scope()
		for _, name := range scope.Names() {
			v, ok := scope.Lookup(name).(*types.Var)
			if !ok || !v.Exported() || !types.Implements(v.Type(), errType) {
				continue
			}
			sentinels++
			if fromNew[v] {
				continue
			}
			if m, _, _ := types.LookupFieldOrMethod(v.Type(), true, v.Pkg(), "ExitCode"); m == nil {
				t.Errorf("%s.%s: an exported error that carries no exit code (declare it with exitcode.New)", p.Name, name)
			}
		}
	}
	// Today: about 90 sentinels; far fewer means the walk lost packages.
	if sentinels < 60 || checked < sentinels {
		t.Errorf("found %d sentinels and checked %d codes: the walk missed packages", sentinels, checked)
	}
	t.Logf("%d packages, %d exported sentinels, %d codes checked against %d documented codes", len(pkgs), sentinels, checked, len(codes))
}

// calledFunc returns the package-level function a call calls, if any.
func calledFunc(info *types.Info, call *ast.CallExpr) *types.Func {
	var id *ast.Ident
	switch f := call.Fun.(type) {
	case *ast.Ident:
		id = f
	case *ast.SelectorExpr:
		id = f.Sel
	default:
		return nil
	}
	fn, ok := info.Uses[id].(*types.Func)
	if !ok || fn.Pkg() == nil || strings.Contains(fn.FullName(), ").") {
		return nil
	}
	return fn
}
