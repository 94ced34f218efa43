package interceptor_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	"github.com/faultline-go/faultline/retry"
)

// selfSigned returns a TLS certificate for the given DNS names, signed by its own key, valid
// for an hour around now (the bubble's clock inside synctest), and a pool that trusts it.
func selfSigned(t *testing.T, names ...string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "faultline test"},
		DNSNames:              names,
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// cutDialer is a dialer for a bufconn server that breaks the first cuts connections: each
// is closed by the "server" before the TLS handshake completes, as a reset would. It counts
// the dials.
type cutDialer struct {
	dial func(context.Context) (net.Conn, error)

	mu    sync.Mutex
	cuts  int
	dials int
}

func (d *cutDialer) DialContext(ctx context.Context, _ string) (net.Conn, error) {
	d.mu.Lock()
	d.dials++
	cut := d.dials <= d.cuts
	d.mu.Unlock()
	if !cut {
		return d.dial(ctx)
	}
	client, server := net.Pipe()
	server.Close() // the handshake reads EOF: reset, not rejected
	return client, nil
}

// TestTLSRejectionNotRetried (issue 16, instance 5; safety.md 1): a TLS handshake the client
// rejects (certificate verification) is a deterministic local failure: never retried, stop
// reason "local failure", the family's base kind, status UNAVAILABLE as grpc-go reports it.
// A handshake cut short (reset) is not deterministic, and is retried.
func TestTLSRejectionNotRetried(t *testing.T) {
	for _, tc := range []struct {
		name    string
		names   []string // the server certificate's DNS names
		trusted bool     // the client trusts the server's certificate
		cuts    int      // connections reset during the handshake before one gets through
		stream  bool     // open StreamLogs instead of calling GetSandbox
		ok      bool     // the call succeeds (after retries)
	}{
		{name: "unknown authority", names: []string{"bufconn"}},
		{name: "unknown authority, stream", names: []string{"bufconn"}, stream: true},
		{name: "name mismatch", names: []string{"elsewhere.example"}, trusted: true},
		{name: "handshake reset twice, then trusted", names: []string{"bufconn"}, trusted: true, cuts: 2, ok: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cert, pool := selfSigned(t, tc.names...)
				if !tc.trusted {
					pool = x509.NewCertPool()
				}
				var retries int
				hooks := retry.Hooks{OnRetry: func(context.Context, retry.RetryEvent) { retries++ }}
				srv := sandboxtest.New(sandboxtest.WithSandboxes("sb-1"))
				lis, stop := srv.StartBufconn(grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})))
				defer stop()
				d := &cutDialer{cuts: tc.cuts, dial: lis.DialContext}
				conn, err := grpc.NewClient("passthrough:///bufconn", append(interceptor.DialOptions(
					interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil), retry.WithHooks(hooks)))),
					grpc.WithContextDialer(d.DialContext),
					grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool})))...)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				sb := sandboxpb.NewSandboxServiceClient(conn)

				start := time.Now()
				if tc.stream {
					var st grpc.ServerStreamingClient[sandboxpb.LogEntry]
					if st, err = sb.StreamLogs(context.Background(), &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"}); err == nil {
						_, err = recvLogs(st)
					}
				} else {
					_, err = sb.GetSandbox(context.Background(), &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
				}
				took := time.Since(start)
				if tc.ok {
					// A reset handshake is retried; the retry waits for the connection to be
					// ready (through the reconnects) rather than spending an attempt per reset.
					if err != nil || retries < 1 {
						t.Errorf("call = %v after %d retries, want success after at least 1 (a reset handshake is retried)", err, retries)
					}
					return
				}
				if status.Code(err) != codes.Unavailable {
					t.Fatalf("call = %v, want UNAVAILABLE", err)
				}
				var e *errs.Error
				if !errors.As(err, &e) || e.Kind() != errs.ErrSandbox || errors.Is(err, errs.ErrSandboxUnavailable) {
					t.Errorf("kind of %v = %v, want %v (the family base: the sandbox is not unavailable)", err, kindOf(err), errs.ErrSandbox)
				}
				if stop, n := stopOf(err); stop != retry.StopLocalFailure || n != 1 || retries != 0 {
					t.Errorf("stop = %v after %d attempts (%d retries), want %v after 1 (err %v)", stop, n, retries, retry.StopLocalFailure, err)
				}
				if took >= time.Second {
					t.Errorf("returned after %v, want before the first backoff", took)
				}
				if n := srv.Calls(sandboxpb.SandboxService_GetSandbox_FullMethodName) + srv.Calls(streamLogs); n != 0 {
					t.Errorf("server calls = %d, want 0", n)
				}
			})
		})
	}
}

// kindOf returns the kind of the *errs.Error in err, or 0.
func kindOf(err error) errs.Kind {
	var e *errs.Error
	if errors.As(err, &e) {
		return e.Kind()
	}
	return 0
}
