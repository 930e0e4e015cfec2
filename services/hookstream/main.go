// Command hookstream is the single binary: with no subcommand it runs every service in one
// process with NATS embedded; with one it runs one service against an external NATS server, or a
// tool (nats, token, pub, …).
//
//	hookstream [--dev] [--data DIR] [--http-addr HOST:PORT] [--nats-listen HOST:PORT]
//	hookstream ingest|matcher|signer|delivery|api --nats-url nats://HOST:PORT
//	hookstream nats [--data DIR] [--nats-listen HOST:PORT] [--nats-config FILE]
//	                [--server-name N --cluster-name C --cluster-listen HOST:PORT --routes URLS]
//	hookstream healthcheck URL
//	hookstream token [--data DIR] --partition P
//	hookstream pub [--nats-url URL] SUBJECT JSON
//	hookstream tail [--nats-url URL] [--partition P [--stream ID]] [--since D]
//	hookstream keygen
//	hookstream rekey [--data DIR | --nats-url URL]
//	hookstream bench --scenario NAME|all --duration D [--json FILE]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"hookstream/services/hookstream/bench"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  hookstream [flags]                      all services in one process, NATS embedded
  hookstream ingest|matcher|signer|delivery|api --nats-url URL [flags]
  hookstream nats [flags]                 a NATS server with JetStream (split deployments; a cluster node with --nats-config or --routes)
  hookstream token --partition P [flags]  print a development token (needs --data of a --dev instance)
  hookstream pub [--nats-url URL] SUBJECT JSON   publish a message, print JetStream's acknowledgement
  hookstream tail [--partition P [--stream ID]] [--since 10m]   follow delivery outcomes
  hookstream keygen                       print a new random master key for webhook secrets
  hookstream healthcheck URL              exit 0 when URL answers 200 (container health checks)
  hookstream rekey [flags]                re-encrypt every webhook secret under the current master key
  hookstream bench --scenario NAME|all --duration D [--json FILE]   the load tool (see README, Performance)
Run "hookstream COMMAND -h" for the flags of a command.
`)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr}); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "hookstream:", err)
		}
		os.Exit(1)
	}
}

// stdio are a command's standard streams; logs go to err.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// run runs the command args name (the all-in-one when they start with a flag or are empty)
// until it is done or ctx ends.
func run(ctx context.Context, args []string, io stdio) error {
	cmd := "all"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "all", "ingest", "matcher", "signer", "delivery", "api":
		return runServices(ctx, cmd, args, io.err)
	case "nats":
		return runNATS(ctx, args, io.err)
	case "token":
		return runToken(args, io.out)
	case "pub":
		return runPub(ctx, args, io.out, io.err)
	case "tail":
		return runTail(ctx, args, io.out)
	case "keygen":
		return runKeygen(io.out)
	case "healthcheck":
		return runHealthcheck(ctx, args)
	case "rekey":
		return runRekey(ctx, args, io.out, io.err)
	case "bench":
		return bench.Run(ctx, args, io.out, io.err)
	case bench.ReceiverCommand: // the bench's receiver process; not listed in the usage
		return bench.RunReceiver(ctx, args, io.in, io.out)
	case "help":
		usage(io.out)
		return nil
	default:
		usage(io.err)
		return fmt.Errorf("unknown command %q", cmd)
	}
}
