package api

import (
	"bufio"
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// apiDoc is the OpenAPI reference, relative to this package's directory
// (where go test runs).
const apiDoc = "../../docs/api.yaml"

// docRoute is one route: an HTTP method and a path, with the access level
// and where it was found.
type docRoute struct {
	Method string // upper case: GET, POST, ...
	Path   string // with {name} parameters, as OpenAPI writes them
	// Access is the x-access word (public, any-session, enroll-session,
	// full-session, admin); "" when unknown.
	Access string
	Where  string // file:line
}

func (r docRoute) key() string { return r.Method + " " + r.Path }

// accessWords maps the Access constants to the x-access words of the doc.
var accessWords = map[string]string{
	"Public":        "public",
	"AnySession":    "any-session",
	"EnrollSession": "enroll-session",
	"FullSession":   "full-session",
	"Admin":         "admin",
	"AdminStepUp":   "admin-step-up",
}

var (
	// routePattern is a ServeMux pattern with a method and a host-less
	// path.
	routePattern = regexp.MustCompile(`^(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS|CONNECT|TRACE)\s+(/\S*)$`)
	// restWildcard is a ServeMux "{name...}" wildcard.
	restWildcard = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)\.\.\.\}`)
)

// muxPathToOpenAPI writes a ServeMux path the way OpenAPI does:
// "{name...}" becomes "{name}", and the end anchor "{$}" goes.
func muxPathToOpenAPI(p string) string {
	return restWildcard.ReplaceAllString(strings.ReplaceAll(p, "{$}", ""), "{$1}")
}

// scanSource finds the routes a Go file registers: every call whose first
// argument is a string literal "METHOD /path" (s.Handle, s.mux.HandleFunc,
// s.HandleHTTP, or any wrapper around them). The syntax tree is used, not
// the text, so comments and line breaks neither hide nor invent routes.
// Method-less patterns ("/api/", the JSON 404 for unknown endpoints) match
// any method and are not endpoints, so they are not routes here.
func scanSource(filename string, src []byte) ([]docRoute, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filename, src, parser.SkipObjectResolution)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", filename, err)
	}
	var out []docRoute
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		lit, ok := call.Args[0].(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return true
		}
		pattern, err := strconv.Unquote(lit.Value)
		if err != nil {
			return true
		}
		m := routePattern.FindStringSubmatch(pattern)
		if m == nil {
			return true
		}
		r := docRoute{Method: m[1], Path: muxPathToOpenAPI(m[2]), Where: fmt.Sprintf("%s:%d", filepath.Base(filename), fset.Position(lit.Pos()).Line)}
		if len(call.Args) >= 2 {
			r.Access = accessWords[identName(call.Args[1])]
		}
		if r.Access == "" {
			// A plain handler on the mux (HandleFunc, HandleHTTP, or
			// Handle without an Access) gets no session check.
			switch identName(call.Fun) {
			case "HandleFunc", "HandleHTTP":
				r.Access = "public"
			case "Handle":
				if len(call.Args) < 3 {
					r.Access = "public"
				}
			}
		}
		out = append(out, r)
		return true
	})
	return out, nil
}

// identName returns the name of an identifier or the selected name of
// x.Name; "" for anything else.
func identName(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return e.Sel.Name
	}
	return ""
}

// scanRoutes finds the routes registered by the non-test Go files of dir.
// Every file is scanned, so routes added in new files (routes_time.go,
// routes_mail.go, ...) are caught too.
func scanRoutes(dir string) ([]docRoute, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	var out []docRoute
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		routes, err := scanSource(name, src)
		if err != nil {
			return nil, err
		}
		out = append(out, routes...)
	}
	return out, nil
}

var (
	docPathKey   = regexp.MustCompile(`^  (?:"([^"]+)"|'([^']+)'|([^\s"'#][^\s#]*)):\s*(?:#.*)?$`)
	docMethodKey = regexp.MustCompile(`^    (get|put|post|delete|options|head|patch|trace):\s*(?:#.*)?$`)
	docOtherKey  = regexp.MustCompile(`^    \S`)
	docAccess    = regexp.MustCompile(`^      x-access:\s*["']?([a-z-]+)["']?\s*(?:#.*)?$`)
)

// parseDocRoutes reads the operations of an OpenAPI document written in the
// block style of docs/api.yaml: path keys at two spaces under the top-level
// "paths:", methods at four spaces, an operation's x-access at six. Lines
// of block scalars are indented deeper than their key, so they never look
// like path or method keys. name is used in the positions.
func parseDocRoutes(name string, raw []byte) ([]docRoute, error) {
	var out []docRoute
	inPaths, sawPaths := false, false
	curPath := ""
	cur := -1 // index in out of the operation being read, -1 if none
	seenPath := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), " \r")
		trimmed := strings.TrimLeft(line, " ")
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if strings.HasPrefix(line, "\t") {
			return nil, fmt.Errorf("%s:%d: tab in the indentation; YAML indents with spaces", name, n)
		}
		indent := len(line) - len(trimmed)
		if indent == 0 {
			inPaths = strings.HasPrefix(line, "paths:")
			sawPaths = sawPaths || inPaths
			curPath, cur = "", -1
			continue
		}
		if !inPaths {
			continue
		}
		switch {
		case indent == 2:
			m := docPathKey.FindStringSubmatch(line)
			if m == nil {
				return nil, fmt.Errorf("%s:%d: expected a path key (\"  /path:\") under paths:, got %q", name, n, line)
			}
			curPath, cur = m[1]+m[2]+m[3], -1
			if !strings.HasPrefix(curPath, "/") {
				return nil, fmt.Errorf("%s:%d: path %q does not start with /", name, n, curPath)
			}
			if first, dup := seenPath[curPath]; dup {
				return nil, fmt.Errorf("%s:%d: path %s is listed twice (first at line %d)", name, n, curPath, first)
			}
			seenPath[curPath] = n
		case indent == 4:
			if m := docMethodKey.FindStringSubmatch(line); m != nil {
				out = append(out, docRoute{Method: strings.ToUpper(m[1]), Path: curPath, Where: fmt.Sprintf("%s:%d", name, n)})
				cur = len(out) - 1
			} else if docOtherKey.MatchString(line) {
				cur = -1 // parameters, summary, ...: not an operation
			}
		case indent == 6 && cur >= 0:
			if m := docAccess.FindStringSubmatch(line); m != nil {
				out[cur].Access = m[1]
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if !sawPaths {
		return nil, fmt.Errorf("%s: no top-level paths: key", name)
	}
	if len(seenPath) == 0 {
		return nil, fmt.Errorf("%s: no path keys at two-space indent under paths:", name)
	}
	return out, nil
}

// routeProblems compares the routes in the code with the documented ones
// and says what is out of step, one sentence per problem.
func routeProblems(code, doc []docRoute) []string {
	var problems []string
	documented := map[string]docRoute{}
	for _, d := range doc {
		documented[d.key()] = d
	}
	registered := map[string]docRoute{}
	for _, c := range code {
		registered[c.key()] = c
		d, ok := documented[c.key()]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s %s (registered at %s) is missing from docs/api.yaml: document it under paths: %q, method %s",
				c.Method, c.Path, c.Where, c.Path, strings.ToLower(c.Method)))
		case c.Access != "" && d.Access == "":
			problems = append(problems, fmt.Sprintf("%s: %s %s has no x-access; %s registers it as %s", d.Where, c.Method, c.Path, c.Where, c.Access))
		case c.Access != "" && d.Access != c.Access:
			problems = append(problems, fmt.Sprintf("%s: %s %s is documented with x-access %s, but %s registers it as %s", d.Where, c.Method, c.Path, d.Access, c.Where, c.Access))
		}
	}
	for _, d := range doc {
		if _, ok := registered[d.key()]; !ok {
			problems = append(problems, fmt.Sprintf("%s documents %s %s, a route that does not exist: no non-test .go file of authd/api registers %q",
				d.Where, d.Method, d.Path, d.Method+" "+d.Path))
		}
	}
	slices.Sort(problems)
	return problems
}

var (
	docComponentKind = regexp.MustCompile(`^  ([A-Za-z0-9_.-]+):\s*(?:#.*)?$`)
	docComponentName = regexp.MustCompile(`^    ([A-Za-z0-9_.-]+):\s*(?:#.*)?$`)
	docRef           = regexp.MustCompile(`\$ref:\s*["']?([^"'\s#]*#[^"'\s]*)["']?`)
	docEnumItem      = regexp.MustCompile(`^        - ["']?([a-z_]+)["']?\s*(?:#.*)?$`)
)

// refProblems lists the $ref values of the document that do not name a
// component it defines (components at two spaces under the top-level
// "components:", names at four), one sentence per problem, and counts the
// $refs it saw.
func refProblems(name string, raw []byte) (problems []string, refCount int) {
	defined := map[string]bool{}
	type ref struct {
		target string
		line   int
	}
	var refs []ref
	inComponents, kind := false, ""
	for n, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimRight(line, " \r")
		if strings.HasPrefix(strings.TrimLeft(line, " "), "#") {
			continue
		}
		if line != "" && line[0] != ' ' {
			inComponents, kind = strings.HasPrefix(line, "components:"), ""
		}
		if inComponents {
			if m := docComponentKind.FindStringSubmatch(line); m != nil {
				kind = m[1]
			} else if m := docComponentName.FindStringSubmatch(line); m != nil && kind != "" {
				defined["#/components/"+kind+"/"+m[1]] = true
			}
		}
		for _, m := range docRef.FindAllStringSubmatch(line, -1) {
			refs = append(refs, ref{m[1], n + 1})
		}
	}
	for _, r := range refs {
		if !defined[r.target] {
			problems = append(problems, fmt.Sprintf("%s:%d: $ref %q names no component defined under components:", name, r.line, r.target))
		}
	}
	return problems, len(refs)
}

// docErrorCodes returns the enum of the ErrorCode schema, written as a
// block list ("        - code") under "      enum:".
func docErrorCodes(name string, raw []byte) ([]string, error) {
	lines := strings.Split(string(raw), "\n")
	start := slices.IndexFunc(lines, func(l string) bool { return strings.TrimRight(l, " \r") == "    ErrorCode:" })
	if start < 0 {
		return nil, fmt.Errorf("%s: no ErrorCode schema (\"    ErrorCode:\" under components.schemas)", name)
	}
	var codes []string
	inEnum := false
	for _, l := range lines[start+1:] {
		l = strings.TrimRight(l, " \r")
		if l == "" {
			continue
		}
		indent := len(l) - len(strings.TrimLeft(l, " "))
		if indent <= 4 {
			break // the next schema
		}
		switch {
		case strings.HasPrefix(l, "      enum:"):
			inEnum = true
		case indent == 6:
			inEnum = false // another key of the schema
		case inEnum:
			m := docEnumItem.FindStringSubmatch(l)
			if m == nil {
				return nil, fmt.Errorf("%s: ErrorCode enum: %q is not a \"        - code\" item", name, l)
			}
			codes = append(codes, m[1])
		}
	}
	if len(codes) == 0 {
		return nil, fmt.Errorf("%s: the ErrorCode schema has no block-list enum", name)
	}
	return codes, nil
}

// errorCodeProblems compares the error codes the server maps to HTTP
// statuses with the documented ErrorCode enum.
func errorCodeProblems(code map[string]int, doc []string) []string {
	var problems []string
	for c, status := range code {
		if !slices.Contains(doc, c) {
			problems = append(problems, fmt.Sprintf("error code %s (HTTP %d) is missing from the ErrorCode enum of docs/api.yaml", c, status))
		}
	}
	for _, c := range doc {
		if _, ok := code[c]; !ok {
			problems = append(problems, fmt.Sprintf("the ErrorCode enum of docs/api.yaml lists %s, which the server's httpStatus map does not have", c))
		}
	}
	slices.Sort(problems)
	return problems
}

// TestOpenAPIErrorCodesAndRefs checks that every error code the server can
// answer is in the documented ErrorCode enum (and no other), and that
// every $ref of the document resolves.
func TestOpenAPIErrorCodesAndRefs(t *testing.T) {
	raw, err := os.ReadFile(apiDoc)
	if err != nil {
		t.Fatalf("read the API reference: %v", err)
	}
	codes, err := docErrorCodes("docs/api.yaml", raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range errorCodeProblems(httpStatus, codes) {
		t.Error(p)
	}
	problems, refs := refProblems("docs/api.yaml", raw)
	for _, p := range problems {
		t.Error(p)
	}
	// The document uses $ref throughout: seeing none means the scan is
	// broken, not that all is well.
	if refs < 50 {
		t.Errorf("found only %d $refs in docs/api.yaml; the scan does not see them", refs)
	}
	t.Logf("%d error codes, %d $refs checked", len(codes), refs)
}

// TestOpenAPIErrorCodeAndRefCheckFindsDrift shows that the checks above
// can fail.
func TestOpenAPIErrorCodeAndRefCheckFindsDrift(t *testing.T) {
	yaml := `paths:
  /x:
    get:
      responses:
        "400":
          $ref: "#/components/responses/BadRequest"
        "502":
          $ref: '#/components/responses/Gone'
components:
  responses:
    BadRequest:
      description: x
  schemas:
    ErrorCode:
      type: string
      enum:
        - bad_request
        - teapot
      description: x
    Other:
      enum:
        - not_an_error_code
`
	wantRefs := []string{`api.yaml:8: $ref "#/components/responses/Gone" names no component defined under components:`}
	if got, n := refProblems("api.yaml", []byte(yaml)); !slices.Equal(got, wantRefs) || n != 2 {
		t.Errorf("ref problems (of %d refs):\n%s\nwant (of 2):\n%s", n, strings.Join(got, "\n"), strings.Join(wantRefs, "\n"))
	}
	codes, err := docErrorCodes("api.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"bad_request", "teapot"}; !slices.Equal(codes, want) {
		t.Fatalf("error codes %q, want %q", codes, want)
	}
	got := errorCodeProblems(map[string]int{"bad_request": 400, "mail_failed": 502}, codes)
	want := []string{
		"error code mail_failed (HTTP 502) is missing from the ErrorCode enum of docs/api.yaml",
		"the ErrorCode enum of docs/api.yaml lists teapot, which the server's httpStatus map does not have",
	}
	if !slices.Equal(got, want) {
		t.Errorf("error code problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := docErrorCodes("api.yaml", []byte("components:\n  schemas:\n    Error:\n      type: object\n")); err == nil || !strings.Contains(err.Error(), "no ErrorCode schema") {
		t.Errorf("missing ErrorCode: error %v", err)
	}
}

// TestOpenAPICoversRoutes keeps docs/api.yaml in step with the code: every
// route registered in the package is documented under its path and method
// with the right access level, and every documented operation exists.
func TestOpenAPICoversRoutes(t *testing.T) {
	code, err := scanRoutes(".")
	if err != nil {
		t.Fatal(err)
	}
	// The scanner must see the routes we know exist, or an empty result
	// would pass for "nothing to document".
	for _, known := range []string{"GET /healthz", "POST /api/v1/login", "DELETE /api/v1/users/{name}"} {
		if !slices.ContainsFunc(code, func(r docRoute) bool { return r.key() == known }) {
			t.Fatalf("the route scan of authd/api did not find %s; found %d routes", known, len(code))
		}
	}
	raw, err := os.ReadFile(apiDoc)
	if err != nil {
		t.Fatalf("read the API reference: %v", err)
	}
	doc, err := parseDocRoutes("docs/api.yaml", raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range routeProblems(code, doc) {
		t.Error(p)
	}
	t.Logf("%d routes registered, %d operations documented", len(code), len(doc))
}

// TestOpenAPIRouteCheckFindsDrift shows that the check above can fail: the
// scanner and the parser see what they should and nothing else, and the
// comparison names each missing, extra and mislabelled route.
func TestOpenAPIRouteCheckFindsDrift(t *testing.T) {
	src := `package api

func (s *Server) routes() {
	s.mux.HandleFunc("GET /healthz", nil)
	s.mux.HandleFunc("/api/", nil)
	// s.Handle("GET /api/v1/commented", Admin, nil)
	s.Handle(
		"POST /api/v1/split",
		Public, s.x)
	s.Handle("DELETE /api/v1/things/{id}", FullSession, s.x)
	s.HandleHTTP("GET /static/{path...}", nil)
	s.HandleHTTP("GET /{$}", nil)
	s.handleJSON("PUT /api/v1/wrapped", Admin, s.x)
	log("GET", "/api/v1/not-a-route")
	_ = "GET /api/v1/not-a-call"
}
`
	code, err := scanSource("routes_x.go", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range code {
		got = append(got, r.key()+" "+r.Access+" "+r.Where)
	}
	want := []string{
		"GET /healthz public routes_x.go:4",
		"POST /api/v1/split public routes_x.go:8",
		"DELETE /api/v1/things/{id} full-session routes_x.go:10",
		"GET /static/{path} public routes_x.go:11",
		"GET / public routes_x.go:12",
		"PUT /api/v1/wrapped admin routes_x.go:13",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("scanned routes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	yaml := `openapi: 3.0.3
info:
  description: |
    paths:
      /api/v1/in-a-description:
        get:
paths:
  /healthz:
    get:
      x-access: public
      description: |
        not a key:
    post:
      x-access: public
  "/api/v1/things/{id}":
    parameters:
      - name: id
    delete:
      x-access: admin
      responses:
        "200":
          description: ok
  /api/v1/wrapped:
    summary: no operations here
components:
  schemas:
    get:
      x-access: public
`
	doc, err := parseDocRoutes("api.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for _, r := range doc {
		got = append(got, r.key()+" "+r.Access+" "+r.Where)
	}
	want = []string{
		"GET /healthz public api.yaml:9",
		"POST /healthz public api.yaml:13",
		"DELETE /api/v1/things/{id} admin api.yaml:18",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("parsed operations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	problems := routeProblems(code, doc)
	wantProblems := []string{
		`GET / (registered at routes_x.go:12) is missing from docs/api.yaml: document it under paths: "/", method get`,
		`GET /static/{path} (registered at routes_x.go:11) is missing from docs/api.yaml: document it under paths: "/static/{path}", method get`,
		`POST /api/v1/split (registered at routes_x.go:8) is missing from docs/api.yaml: document it under paths: "/api/v1/split", method post`,
		`PUT /api/v1/wrapped (registered at routes_x.go:13) is missing from docs/api.yaml: document it under paths: "/api/v1/wrapped", method put`,
		`api.yaml:13 documents POST /healthz, a route that does not exist: no non-test .go file of authd/api registers "POST /healthz"`,
		`api.yaml:18: DELETE /api/v1/things/{id} is documented with x-access admin, but routes_x.go:10 registers it as full-session`,
	}
	if !slices.Equal(problems, wantProblems) {
		t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(problems, "\n"), strings.Join(wantProblems, "\n"))
	}

	for _, bad := range []struct{ name, yaml, mention string }{
		{"no paths", "openapi: 3.0.3\n", "no top-level paths"},
		{"four-space indent", "paths:\n    /x:\n        get:\n", "no path keys"},
		{"not a path", "paths:\n  x:\n    get:\n", "does not start with /"},
		{"duplicate", "paths:\n  /x:\n    get:\n  /x:\n    post:\n", "listed twice"},
		{"tab", "paths:\n\t/x:\n", "tab"},
	} {
		_, err := parseDocRoutes("api.yaml", []byte(bad.yaml))
		if err == nil || !strings.Contains(err.Error(), bad.mention) {
			t.Errorf("%s: error %v, want one mentioning %q", bad.name, err, bad.mention)
		}
	}
}
