// Package engine is how a transport drives the retry loop of package retry: package
// interceptor for grpc-go, connectfaultline for connect-go. The loop itself (deciding,
// waiting, the budget, the throttle, the hooks, the final error) lives in package retry,
// which exports only what a user needs; it implements the interfaces below and registers
// itself here when it is initialised (retry imports this package, so this package cannot
// import retry: grpc-go's internal pattern).
//
// A transport makes the attempts: it opens streams, invokes, replays, resumes, and knows
// what the loop cannot see (whether an attempt reached the wire, whether response headers
// arrived, the connection's state). It hands each failure, classified, to its [Tracker]
// with those [Facts], and the tracker says "again" (nil) or returns the call's final error.
package engine

import (
	"context"
	"time"
)

// Facts are what a transport knows of a failed attempt beyond its error.
type Facts struct {
	// Level is the call's idempotency: a retry.Idempotency value.
	Level uint8
	// NotSent: the attempt provably never reached a transport (the stream or call was never
	// created), so it ran nothing: it may be repeated whatever the method, spends no budget
	// and is not evidence of overload.
	NotSent bool
	// Headers: response headers arrived before the failure, so the server committed to the
	// call (gRFC A6): a call of unknown idempotency is then not repeated unless the server
	// declined the work.
	Headers bool
	// Resume: the next attempt continues a stream where it stopped instead of starting over.
	Resume bool
	// Progressed: a resumed stream delivered messages since its previous attempt, so the
	// next attempt repeats no work of the server's: it starts a new burst of failures and
	// spends no budget.
	Progressed bool
	// Reported: the attempt had already been reported a success (a stream that delivered
	// its first response: Route.Succeeded or Tracker.Committed), so the budget and the
	// throttle have counted it: its failure is not the call's first attempt for the budget,
	// and is not counted again by the throttle.
	Reported bool
	// NotResumable: the call can only go on where it stopped (a stream that delivered
	// messages) and cannot (no resumer, or the resumer found no position): a failure the
	// policy would retry ends it with retry.StopNotResumable; the error says why.
	NotResumable bool
}

// Conn is what a transport knows of the connection its attempts go over. A nil Conn is a
// connection that is always ready and never closed.
type Conn interface {
	// Target names the connection in the hooks' events ("dns:///host:443"). It is called
	// only when an event is built.
	Target() string
	// Closed returns a channel that is closed when the connection is closed for good: a
	// wait between attempts then ends at once.
	Closed() <-chan struct{}
	// Ready reports whether an attempt started now would find the connection ready rather
	// than fail fast or wait to connect; when it would not, changed is closed at the
	// connection's next change of state. Ready may start connecting an idle connection.
	Ready() (ready bool, changed <-chan struct{})
}

// Route is one retrier (a policy, its budget, throttle and hooks) as a transport drives
// it. Its methods are safe for concurrent use and allocate nothing.
type Route interface {
	// Retries reports whether the policy makes more than one attempt.
	Retries() bool
	// Observed reports whether a call that makes one attempt still has something to
	// report to: hooks (OnDone hears of a failed call) or an adaptive throttle (which sheds
	// first attempts and counts outcomes). A call of a route that neither retries nor is
	// observed may skip the engine.
	Observed() bool
	// AttemptTimeout is the policy's PerAttemptTimeout; 0 means none.
	AttemptTimeout() time.Duration
	// Admit is asked before a call's first attempt: nil lets it go; otherwise it is the
	// error of an attempt the client's adaptive throttling sheds, for the transport to
	// classify and hand to [Tracker.Failed] (which ends the call without an attempt).
	Admit() error
	// Succeeded reports that a call's first attempt succeeded (for a stream: committed),
	// to the budget and the throttle. No hook runs.
	Succeeded()
	// Track returns the tracker of one call whose first attempt is about to be made or
	// has been made (then the transport calls Failed next). method names the call in
	// events; conn may be nil.
	Track(method string, conn Conn) Tracker
}

// Tracker is the retry state of one logical call. It is not safe for concurrent use:
// a transport calls it from the goroutine deciding about the call's failures.
type Tracker interface {
	// Attempt returns the number of the current attempt, 1 for the first, counting every
	// attempt of the call (resumes included).
	Attempt() int
	// Context returns the context for the current attempt: ctx, or a child of it bounded
	// by the policy's PerAttemptTimeout, released by the next Failed, Succeeded or End.
	Context(ctx context.Context) context.Context
	// Failed reports the failure err of the current attempt, classified by the transport,
	// with what the transport knows of it. It returns nil when another attempt is to be
	// made, after waiting for it (Attempt then counts it); otherwise the call's final
	// error, after the hooks were told.
	Failed(ctx context.Context, err error, f Facts) error
	// Succeeded reports that the current attempt succeeded and the call is over: to the
	// budget and the throttle, and to the OnDone hook when the call retried.
	Succeeded(ctx context.Context)
	// Committed reports that a stream delivered its first response on the current
	// attempt: the budget and the throttle are told of a success; the call goes on.
	Committed()
	// End reports that a stream ended cleanly (io.EOF) after the attempt that Committed
	// reported: the OnDone hook runs when the call retried or resumed. A stream that ends
	// with an error hands it to Failed instead (with NotResumable after commit).
	End(ctx context.Context)
}

var routeOf func(r any) Route

// Register is called by package retry when it is initialised: routeOf maps a
// *retry.Retrier to its Route.
func Register(f func(r any) Route) { routeOf = f }

// RouteOf returns the Route of r, a *retry.Retrier.
func RouteOf(r any) Route { return routeOf(r) }
