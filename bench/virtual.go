package bench

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/retry"
)

// connect makes conn connect and waits until it is READY, for at most 5 s (of the
// bubble's virtual time when called in one).
func connect(conn *grpc.ClientConn) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn.Connect()
	for s := conn.GetState(); s != connectivity.Ready; s = conn.GetState() {
		if !conn.WaitForStateChange(ctx, s) {
			return fmt.Errorf("connection %v after 5 s, want READY", s)
		}
	}
	return nil
}

// errLabel says what a failed call returned, in a few words that do not vary from call to
// call: the status code, then why retrying stopped (faultline's *retry.Error), or else
// the status message.
func errLabel(err error) string {
	code := status.Code(err)
	var re *retry.Error
	if errors.As(err, &re) {
		return code.String() + ": " + re.StopReason().String()
	}
	msg := status.Convert(err).Message()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	if len(msg) > 100 {
		msg = msg[:97] + "..."
	}
	return code.String() + ": " + msg
}
