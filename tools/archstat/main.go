// Command archstat prints the shape figures of architecture.md for the library's core
// packages: exported identifiers (top-level types, funcs, consts and vars, methods of
// exported types, exported fields of exported structs, in non-test files), the largest
// non-generated file, and the longest function with the highest cyclomatic complexity.
//
// Usage, from the repository root:
//
//	go run ./tools/archstat [-list] [dir ...]
//
// With no directories it reads errs, classify, retry and interceptor for the identifiers,
// and every non-generated, non-test library file of the root module for the sizes. -list
// also prints every identifier counted.
package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

func main() {
	core := []string{"errs", "classify", "retry", "interceptor"}
	args := os.Args[1:]
	list := len(args) > 0 && args[0] == "-list"
	if list {
		args = args[1:]
	}
	if len(args) > 0 {
		core = args
	}
	total := 0
	for _, dir := range core {
		names := exported(dir)
		fmt.Printf("exported identifiers %-12s %d\n", dir, len(names))
		if list {
			sort.Strings(names)
			fmt.Printf("\t%s\n", strings.Join(names, " "))
		}
		total += len(names)
	}
	fmt.Printf("exported identifiers %-12s %d\n", "total", total)

	var files []string
	_ = filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != "." {
			switch {
			case strings.HasPrefix(d.Name(), "."), d.Name() == "testdata", d.Name() == "tools",
				d.Name() == "examples", d.Name() == "integration", d.Name() == "bench":
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // another module
			}
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") &&
			!strings.HasSuffix(path, ".pb.go") && !strings.Contains(path, "internal/sandboxtest") &&
			!strings.Contains(path, "internal/echotest") {
			files = append(files, path)
		}
		return nil
	})
	type fn struct {
		name        string
		lines, cycl int
	}
	var biggest string
	var biggestLines int
	var bigFiles []string // over architecture.md's 350 lines
	var fns []fn
	fset := token.NewFileSet()
	for _, path := range files {
		src, err := os.ReadFile(path)
		if err != nil {
			panic(err)
		}
		n := strings.Count(string(src), "\n")
		if n > biggestLines {
			biggest, biggestLines = path, n
		}
		if n > 350 {
			bigFiles = append(bigFiles, fmt.Sprintf("%s (%d)", path, n))
		}
		f, err := parser.ParseFile(fset, path, src, 0)
		if err != nil {
			panic(err)
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			name := fd.Name.Name
			if fd.Recv != nil && len(fd.Recv.List) > 0 {
				name = recvName(fd.Recv.List[0].Type) + "." + name
			}
			lines := fset.Position(fd.End()).Line - fset.Position(fd.Pos()).Line + 1
			fns = append(fns, fn{filepath.Dir(path) + "." + name, lines, cyclomatic(fd)})
		}
	}
	fmt.Printf("largest file: %s, %d lines\n", biggest, biggestLines)
	sort.Slice(fns, func(i, j int) bool { return fns[i].lines > fns[j].lines })
	for _, f := range fns[:5] {
		fmt.Printf("longest: %-50s %3d lines, complexity %d\n", f.name, f.lines, f.cycl)
	}
	sort.Slice(fns, func(i, j int) bool { return fns[i].cycl > fns[j].cycl })
	for _, f := range fns[:5] {
		fmt.Printf("most complex: %-45s %3d lines, complexity %d\n", f.name, f.lines, f.cycl)
	}
	sort.Strings(bigFiles)
	fmt.Printf("files over 350 lines: %d %v\n", len(bigFiles), bigFiles)
	var over []string // over architecture.md's 50 lines or complexity 15
	for _, f := range fns {
		if f.lines > 50 || f.cycl > 15 {
			over = append(over, fmt.Sprintf("%s (%d/%d)", f.name, f.lines, f.cycl))
		}
	}
	fmt.Printf("functions over 50 lines or complexity 15: %d %v\n", len(over), over)
}

func recvName(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.StarExpr:
		return recvName(t.X)
	case *ast.IndexExpr:
		return recvName(t.X)
	case *ast.Ident:
		return t.Name
	}
	return "?"
}

// exported returns the exported identifiers of the package in dir; a field or method as
// Type.Name.
func exported(dir string) []string {
	fset := token.NewFileSet()
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		panic(err)
	}
	var files []*ast.File
	for _, path := range paths {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			panic(err)
		}
		files = append(files, f)
	}
	exportedTypes := map[string]bool{}
	var n []string
	for _, f := range files {
		for _, d := range f.Decls {
			if gd, ok := d.(*ast.GenDecl); ok {
				for _, s := range gd.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						if s.Name.IsExported() {
							n = append(n, s.Name.Name)
							exportedTypes[s.Name.Name] = true
							if st, ok := s.Type.(*ast.StructType); ok {
								for _, fl := range st.Fields.List {
									for _, nm := range fl.Names {
										if nm.IsExported() {
											n = append(n, s.Name.Name+"."+nm.Name)
										}
									}
								}
							}
						}
					case *ast.ValueSpec:
						for _, nm := range s.Names {
							if nm.IsExported() {
								n = append(n, nm.Name)
							}
						}
					}
				}
			}
		}
	}
	for _, f := range files {
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || !fd.Name.IsExported() {
				continue
			}
			switch {
			case fd.Recv == nil:
				n = append(n, fd.Name.Name)
			case exportedTypes[recvName(fd.Recv.List[0].Type)]:
				n = append(n, recvName(fd.Recv.List[0].Type)+"."+fd.Name.Name)
			}
		}
	}
	return n
}

// cyclomatic is 1 plus the branch points of fd: if, for, range, case and comm clauses
// (but default), && and ||.
func cyclomatic(fd *ast.FuncDecl) int {
	c := 1
	ast.Inspect(fd, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.IfStmt, *ast.ForStmt, *ast.RangeStmt:
			c++
		case *ast.CaseClause:
			if n.List != nil {
				c++
			}
		case *ast.CommClause:
			if n.Comm != nil {
				c++
			}
		case *ast.BinaryExpr:
			if n.Op == token.LAND || n.Op == token.LOR {
				c++
			}
		}
		return true
	})
	return c
}
