package sandboxtest

import (
	"fmt"

	"github.com/faultline-go/faultline/internal/sandboxpb"
)

// WithGrowingLog gives every sandbox a log that grows while it is read, as a log followed
// with StreamLogs does: it starts empty, [Server.AppendLog] adds lines and [Server.EndLog]
// ends it. A StreamLogs call for which no [StreamLogsScript] is queued sends the entries from
// its resume_log_offset up to the log's current end; with follow set it then waits for
// more, until the log has ended and every entry is sent (or its context ends), and ends with
// OK. Entries are as [StreamLogsScript] describes them. It overrides [WithLog].
//
// It lets a test tail logs across faults without depending on the machine's speed: append,
// wait until every reader has what was appended, inject a fault, append again.
func WithGrowingLog() Option {
	return optionFunc(func(s *Server) { s.growing, s.logGrew = true, make(chan struct{}) })
}

// AppendLog adds n lines to the log of every sandbox of a [WithGrowingLog] server, and
// returns the log's new length. It panics on a server without WithGrowingLog, or after
// [Server.EndLog].
func (s *Server) AppendLog(n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.growing || s.logEnded {
		panic("sandboxtest: AppendLog needs WithGrowingLog, before EndLog")
	}
	s.logEnd += uint64(max(n, 0))
	close(s.logGrew)
	s.logGrew = make(chan struct{})
	return int(s.logEnd)
}

// EndLog ends the logs of a [WithGrowingLog] server: StreamLogs calls that follow them end
// with OK once they have sent every line. It panics on a server without WithGrowingLog.
func (s *Server) EndLog() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.growing {
		panic("sandboxtest: EndLog needs WithGrowingLog")
	}
	if !s.logEnded {
		s.logEnded = true
		close(s.logGrew)
		s.logGrew = make(chan struct{})
	}
}

// tailGrowingLog sends the growing log from req's resume_log_offset, following it when req
// asks to (see WithGrowingLog).
func (s *Server) tailGrowingLog(req *sandboxpb.StreamLogsRequest, stream sandboxpb.SandboxService_StreamLogsServer) error {
	session := "logs-" + req.GetSandboxId()
	for off := req.GetResumeLogOffset(); ; {
		s.mu.Lock()
		end, ended, grew := s.logEnd, s.logEnded, s.logGrew
		s.mu.Unlock()
		for ; off < end; off++ {
			e := &sandboxpb.LogEntry{Data: fmt.Appendf(nil, "line %d\n", off), LogSessionId: session, NextLogOffset: off + 1}
			if err := stream.Send(e); err != nil {
				return err
			}
		}
		if ended || !req.GetFollow() {
			return nil
		}
		select {
		case <-grew:
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
}
