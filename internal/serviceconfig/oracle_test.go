package serviceconfig_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	gsc "google.golang.org/grpc/serviceconfig"
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

// grpcMethods returns what grpc-go's parse result says of each name.
func grpcMethods(pr *gsc.ParseResult) map[string]grpc.MethodConfig {
	//lint:ignore SA1019 the deprecated type is how grpc-go's parse result shows its methods
	sc, ok := pr.Config.(*grpc.ServiceConfig)
	if !ok {
		return nil
	}
	return sc.Methods
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
