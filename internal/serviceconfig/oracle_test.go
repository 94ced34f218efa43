package serviceconfig_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	gsc "google.golang.org/grpc/serviceconfig"

	"github.com/faultline-go/faultline/internal/serviceconfig"
)

// grpcParser returns grpc-go's own service config parser, the one a string given to
// grpc.WithDefaultServiceConfig goes through (with the default cap of 5 attempts), reached
// the public way: through the resolver.ClientConn a resolver is built with. It is the oracle
// of this package's tests.
func grpcParser(tb testing.TB) func(string) *gsc.ParseResult {
	tb.Helper()
	r := manual.NewBuilderWithScheme("oracle")
	built := make(chan resolver.ClientConn, 1)
	r.BuildCallback = func(_ resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) { built <- cc }
	conn, err := grpc.NewClient("oracle:///config", grpc.WithResolvers(r), grpc.WithNoProxy(),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatalf("grpc.NewClient: %v", err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	conn.Connect()
	cc := <-built
	return cc.ParseServiceConfig
}

// grpcMethods returns what grpc-go's parse result says of each name: its retry policy in
// this package's terms, nil for a name without one.
func grpcMethods(pr *gsc.ParseResult) map[string]*serviceconfig.RetryPolicy {
	//lint:ignore SA1019 the deprecated type is how grpc-go's parse result shows its methods
	sc, ok := pr.Config.(*grpc.ServiceConfig)
	if !ok {
		return nil
	}
	out := make(map[string]*serviceconfig.RetryPolicy, len(sc.Methods))
	for name, mc := range sc.Methods {
		g := mc.RetryPolicy
		if g == nil {
			out[name] = nil
			continue
		}
		var cs []codes.Code
		for c, on := range g.RetryableStatusCodes {
			if on {
				cs = append(cs, c)
			}
		}
		slices.Sort(cs)
		out[name] = &serviceconfig.RetryPolicy{MaxAttempts: g.MaxAttempts, InitialBackoff: g.InitialBackoff,
			MaxBackoff: g.MaxBackoff, BackoffMultiplier: g.BackoffMultiplier, RetryableStatusCodes: cs}
	}
	return out
}

// hasLBConfig reports whether js, a JSON object, sets loadBalancingConfig (matched as
// encoding/json matches it for grpc-go): grpc-go checks that part against its registered
// balancers, and this package leaves it to grpc-go.
func hasLBConfig(js string) bool {
	var v struct {
		LoadBalancingConfig *json.RawMessage `json:"loadBalancingConfig"`
	}
	return json.Unmarshal([]byte(js), &v) == nil && v.LoadBalancingConfig != nil
}

// configs returns the service configs of testdata/configs, shared with package
// interceptor's differential test, by file name.
func configs(tb testing.TB) map[string]string {
	tb.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "configs", "*.json"))
	if err != nil || len(files) == 0 {
		tb.Fatalf("testdata/configs: %v, %d files", err, len(files))
	}
	out := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(f), ".json")] = string(b)
	}
	return out
}
