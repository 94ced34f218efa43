// Package retry is a retry loop that honours the server: it retries the kinds of failure a
// [Policy] names (by default [errs.ErrSandboxUnavailable] and
// [errs.ErrSandboxResourceExhausted]), waits as long as a google.rpc.RetryInfo hint asks
// (never shorter, plus a little positive jitter), never starts a wait that would end past
// the caller's deadline, and spends from a [Budget] shared by all calls so that an outage
// does not become a retry storm.
//
// It is transport-agnostic: it reads a failure's kind and hint from an [*errs.Error]
// (errors.AsType), so it works for gRPC calls (package interceptor installs it) and for anything
// else, such as an SDK's "poll until RUNNING" loop:
//
//	err := retry.Do(ctx, retry.DefaultPolicy(), func(ctx context.Context) error {
//		sb, err := client.GetSandbox(ctx, req)
//		if err != nil {
//			return err
//		}
//		if sb.GetStatus().GetState() != sandboxpb.SandboxStatus_STATE_RUNNING {
//			return errs.New(errs.ErrSandboxUnavailable, "still starting") // retried
//		}
//		return nil
//	})
//	var re *retry.Error
//	if errors.As(err, &re) {
//		log.Printf("gave up after %d attempts: %v", re.Attempts(), re.StopReason())
//	}
//
// # Decisions
//
// For each failure, in order (the code is decide, and the steps of tracker.Failed around it):
//
//  1. It already holds the final [*Error] of another retry loop -> returned as it is (retries
//     never nest). The throttle shed the call's first attempt -> stop ([StopThrottled],
//     nothing was sent). The caller's context ended -> stop.
//  2. May it be repeated at all? The client produced it and would again (a local failure) ->
//     stop. Its kind is not retried (in RetryOn, or a family base kind with a code in
//     TransientCodes or a trusted transient reason; for a policy with RetryCodes, its code
//     is not in them) and the attempt did not run out of its own PerAttemptTimeout (its
//     deadline passed, or a DEADLINE_EXCEEDED came within a millisecond of it) -> stop. A
//     RESOURCE_EXHAUSTED without RetryInfo or a trusted transient reason -> stop ("no server
//     signal": a quota). Repeating it is not safe at the call's [Idempotency] (NeverRetry;
//     NotIdempotent, and IdempotencyUnknown once the server sent response headers, unless
//     the server declined the work), unless the attempt was never sent -> stop. A stream
//     that delivered messages and cannot resume -> stop.
//  3. Has the schedule room for it? MaxAttempts reached -> stop ([StopNotReady] when the
//     schedule went to waiting for a connection that never became ready). A positive hint
//     above MaxRetryDelay -> stop at once, the hint still readable on the error. The wait
//     (hint, else backoff) would end at or after the deadline, or at or past MaxElapsed ->
//     stop at once instead of sleeping into a certain DEADLINE_EXCEEDED.
//  4. The throttle sheds the retry, or the budget refuses it -> stop. Only a retry of an
//     attempt that may have reached the server asks the budget: one that was never sent, or
//     a resume of a stream that delivered messages since, spends nothing.
//  5. Otherwise the OnRetry hook runs and the loop waits. If the connection is not ready
//     then, the retry waits for it rather than make an attempt that would fail fast: each
//     further stretch of the backoff schedule it waits counts as one of MaxAttempts, and the
//     schedule's last attempt is made whatever the connection's state, so a server that is
//     gone fails the call within the policy's total backoff. Unlike a backoff wait, the
//     wait for the connection may last until the caller's deadline (the connection may come
//     back before it): the call then ends with the deadline's status, the last failure in
//     its error. The connection's close ends the wait at once.
//
// "Attempts" always include the first. For gRPC calls the README's behaviour contract states
// the same rules.
//
// # Errors
//
// When it gives up, [Retrier.Do] returns an [*Error] that answers what the last attempt's
// error answered (errors.Is/As, and GRPCStatus returning the last status unmodified, so
// status.Code and status.FromError are unchanged) and adds Attempts, TotalWait and StopReason.
// When the caller's context ends during a wait, the status is Canceled or DeadlineExceeded
// and errors.Is(err, context.Canceled) holds; the last RPC error stays reachable.
//
// # Concurrency
//
// Policy is a value; a [Retrier], the budgets and an [AdaptiveThrottle] are safe for
// concurrent use. The loop starts no goroutines and never logs: observe it through [Hooks].
package retry
