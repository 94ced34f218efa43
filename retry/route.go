package retry

import (
	"time"

	"github.com/faultline-go/faultline/internal/engine"
)

func init() {
	engine.Register(func(r any) engine.Route { return route{r.(*Retrier)} })
}

// route is a Retrier as a transport drives it, through internal/engine.
type route struct{ r *Retrier }

func (rt route) Retries() bool                 { return rt.r.policy.MaxAttempts > 1 }
func (rt route) AttemptTimeout() time.Duration { return rt.r.policy.PerAttemptTimeout }
func (rt route) Observed() bool                { return rt.r.throttle != nil || rt.r.hooks.OnDone != nil }
func (rt route) Admit() error                  { return rt.r.admit() }
func (rt route) Succeeded()                    { rt.r.succeeded() }

func (rt route) Track(method string, conn engine.Conn) engine.Tracker {
	return rt.r.track(method, conn)
}
