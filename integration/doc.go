// Package integration proves faultline against real parts: a real gRPC server over TCP on
// 127.0.0.1, transport faults injected with toxiproxy, and a hostile HTTP/2 server. It is a
// module of its own so that the library's users never download its dependencies.
package integration
