// Command compare measures faultline's interceptors side by side with other Go retry
// layers for gRPC and prints one markdown report on standard output (progress goes to
// standard error).
//
// Usage, from the repository root:
//
//	go run ./bench/cmd/compare [-short] [-note text] [scenario ...]
//
// Scenarios: success, decode, retryinfo, deadline, overload, outage (on the real clock),
// fleet, restart, tails, proxy (in virtual time, through a child `go test` of the bench
// module); none named means all, in that order. Flags may come before or after scenario
// names. -short runs small sizes that finish in seconds and checks no goal. See package
// github.com/faultline-go/faultline/bench for what each scenario measures.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/faultline-go/faultline/bench"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	short := fs.Bool("short", false, "small sizes that finish in seconds; goals are not checked")
	note := fs.String("note", "", "a note printed under the report's title (e.g. that other work was running)")
	quiet := fs.Bool("q", false, "no progress lines on standard error")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: compare [-short] [-note text] [-q] [scenario ...]\nscenarios: %v\n", bench.Scenarios())
		fs.PrintDefaults()
	}
	// Accept flags after scenario names too: parse, take a name, parse the rest.
	var names []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		names = append(names, fs.Arg(0))
		args = fs.Args()[1:]
	}
	cfg := bench.Config{Short: *short, Scenarios: names, Note: *note, Progress: os.Stderr}
	if *quiet {
		cfg.Progress = nil
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return bench.Run(ctx, os.Stdout, cfg)
}
