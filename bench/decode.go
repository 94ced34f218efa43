package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/internal/sandboxpb"
)

// decoder is one way of reading a failed call's error details.
type decoder struct {
	name   string
	decode func(err error) error // returns an error if it did not find the three details
}

// decode measures reading one status with ErrorInfo (2 metadata entries), RetryInfo and
// BadRequest, received from a real call, into each library's error value.
func decode(ctx context.Context, e *env) error {
	received, err := failedCall(ctx)
	if err != nil {
		return err
	}
	c := classify.New()
	call := classify.Call{Method: getSandbox, Resource: errs.Resource{SandboxID: sandboxID}}
	decoders := []decoder{
		{"status.FromError + Details()", func(err error) error {
			st, _ := status.FromError(err)
			if len(st.Details()) != 3 {
				return errors.New("want 3 details")
			}
			return nil
		}},
		{"faultline classify.Classify -> *errs.Error", func(err error) error {
			fe := c.Classify(err, call)
			if _, ok := fe.RetryDelay(); !ok || fe.Reason() == "" {
				return errors.New("want a reason and a retry delay")
			}
			return nil
		}},
		{"gax-go apierror.FromError", func(err error) error {
			ae, ok := apierror.FromError(err)
			if !ok || ae.Reason() == "" || ae.Details().RetryInfo == nil || ae.Details().BadRequest == nil {
				return errors.New("want an APIError with reason, RetryInfo and BadRequest")
			}
			return nil
		}},
	}
	ops := make([]func() error, len(decoders))
	for i, d := range decoders {
		if err := d.decode(received); err != nil {
			return fmt.Errorf("%s: %w", d.name, err)
		}
		ops[i] = func() error { return d.decode(received) }
	}
	rounds, batch := size(e, 3, 20), size(e, 1000, 20000)
	e.log("decode: %d rounds of %d", rounds, batch)
	b, err := paired(ctx, rounds, len(decoders), func(i int) (float64, float64, error) {
		return timeBatch(ops[i], batch)
	})
	if err != nil {
		return err
	}
	e.r.para("One status received from a GetSandbox call: UNAVAILABLE with ErrorInfo (domain "+
		"cwsandbox.com, 2 metadata entries), RetryInfo and BadRequest (1 violation). Each decoder "+
		"reads it %d times per batch, in %d rounds where each decoder's batch runs next to a batch of "+
		"status.FromError + Details() (the baseline of the ratios), one goroutine and no server "+
		"running, so allocations are exact.", batch, rounds)
	rows := make([][]string, len(decoders))
	for i, d := range decoders {
		rows[i] = []string{d.name, b.ns[i].iqr(nanos), b.ratio(i).iqr(ratio), b.allocs[i].iqr(fixed1), b.allocRatio(i).iqr(ratio)}
	}
	e.r.table([]string{"decoder", "time/op", "time ratio", "allocs/op", "allocs ratio"}, rows)
	// The goal (classification.md, parse rule 1) is relative to gax-go's decoder: decoding
	// runs only on failures, followed by a round trip or a backoff.
	tr := b.ratioTo(1, 2).median()
	extra := b.allocs[1].median() - b.allocs[2].median()
	e.r.goal(tr <= 1.3 && extra <= 5, e.short, fmt.Sprintf(
		"faultline <= 1.3x the time and <= 5 more allocations than gax-go's apierror.FromError: time %.3fx (%s), allocations %+.1f (%s).",
		tr, metOrMissed(tr <= 1.3), extra, metOrMissed(extra <= 5)))
	return nil
}

// failedCall returns the error of a GetSandbox call that the server fails with the
// decode scenario's status.
func failedCall(ctx context.Context) (error, error) {
	srv, cs, done, err := setUp(ctx, peersWhere(func(p Peer) bool { return p.Role == RolePlain }))
	if err != nil {
		return nil, err
	}
	defer done()
	srv.sb.FailNext(getSandbox, 1, faultlinetest.Status(codes.Unavailable, "backend is restarting",
		faultlinetest.ErrorInfo("cwsandbox.com", "CWSANDBOX_BACKEND_UNAVAILABLE", map[string]string{"region": "us-east-04", "runner": "r-17"}),
		faultlinetest.RetryInfo(2*time.Second),
		faultlinetest.BadRequest(faultlinetest.FieldViolation("spec.image", "must not be empty"))))
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, callErr := cs[0].api.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: sandboxID})
	if status.Code(callErr) != codes.Unavailable {
		return nil, fmt.Errorf("scripted failure: got %v, want UNAVAILABLE", callErr)
	}
	return callErr, nil
}
