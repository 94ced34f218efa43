// Package retry is a retry loop that honours the server: it retries the kinds of failure a
// [Policy] names (by default [errs.ErrSandboxUnavailable] and
// [errs.ErrSandboxResourceExhausted]), waits as long as a google.rpc.RetryInfo hint asks
// (never shorter, plus a little positive jitter), never starts a wait that would end past
// the caller's deadline, and spends from a [Budget] shared by all calls so that an outage
// does not become a retry storm.
//
// It is transport-agnostic: it reads a failure's kind and hint from an [*errs.Error]
// (errors.As), so it works for gRPC calls (package interceptor installs it) and for anything
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
// For each failure, in order: it already holds the final [*Error] of another retry loop ->
// returned as it is (retries never nest); the caller's context ended -> stop; the client
// produced it and would again ([OriginLocal]) -> stop; its kind is not retried (in RetryOn,
// or a family base kind with a code in TransientCodes or a trusted transient reason; for a
// policy with RetryCodes, its code is not in them), and the
// attempt did not run out of its own PerAttemptTimeout -> stop; a RESOURCE_EXHAUSTED without
// RetryInfo or a trusted transient reason -> stop ("no server signal": a quota); repeating it
// is not safe at the call's [Idempotency] (NeverRetry; NotIdempotent unless the server
// declined the work or the request was never sent) -> stop; MaxAttempts reached -> stop; a
// positive hint above MaxRetryDelay -> stop at once, the hint still readable on the error;
// the wait (hint, else backoff) would end at or after the deadline, or at or past MaxElapsed
// -> stop at once instead of sleeping into a certain DEADLINE_EXCEEDED; the budget says no
// -> stop. Otherwise the OnRetry hook runs and the loop waits. "Attempts" always include the
// first. For gRPC calls the README's behaviour contract states the same rules.
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
// Policy is a value; [Retrier], [RatioBudget] and [TokenBucket] are safe for concurrent use;
// a [Tracker] belongs to one call. The loop starts no goroutines and never logs: observe it
// through [Hooks].
package retry
