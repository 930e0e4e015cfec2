package console

import (
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"

	"hookstream/proto"
)

// tailBuffer bounds the outcomes waiting for a slow browser; past it they are dropped (a tail
// is a view, not a record: the deliveries list and OUTCOMES itself keep every outcome).
const tailBuffer = 256

// tailHeartbeat keeps an idle event stream open through proxies and lets a closed one be noticed.
const tailHeartbeat = 15 * time.Second

type tailData struct {
	StreamID string
}

func (c *Console) tailPage(w http.ResponseWriter, r *http.Request, s *session, p string) error {
	id := r.URL.Query().Get("streamId")
	if id != "" && !proto.ValidToken(id) {
		return &apiError{Status: http.StatusBadRequest, Field: "streamId", Message: "not a stream id"}
	}
	c.render(w, r, http.StatusOK, "tail", view{Title: "Live tail", Session: s, Partition: p, Nav: "tail"}, &tailData{StreamID: id})
	return nil
}

// tailEvents streams the partition's outcomes (of one stream with ?streamId=) as server-sent
// events from the moment the browser connects. It subscribes to the OUTCOMES stream's subjects
// with a core subscription rather than a JetStream consumer: a tail is live and at most once,
// and an open browser tab then costs the server no consumer state.
func (c *Console) tailEvents(w http.ResponseWriter, r *http.Request, s *session, p string) error {
	id := r.URL.Query().Get("streamId")
	if id == "" {
		id = "*"
	} else if !proto.ValidToken(id) {
		return &apiError{Status: http.StatusBadRequest, Field: "streamId", Message: "not a stream id"}
	}
	if c.cfg.NC == nil {
		return &apiError{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "the live tail is not available in this process"}
	}
	msgs := make(chan []byte, tailBuffer)
	sub, err := c.cfg.NC.Subscribe(proto.OutcomeSubject(p, id, ">"), func(m *nats.Msg) {
		select {
		case msgs <- m.Data:
		default:
		}
	})
	if err != nil {
		return fmt.Errorf("tail subscribe: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	rc := http.NewResponseController(w)
	// The server's write timeout would end the stream after a minute.
	_ = rc.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprint(w, ": tail of "+p+"\n\n")
	if err := rc.Flush(); err != nil {
		return nil
	}
	c.pump(r, w, rc, msgs)
	return nil
}

// pump writes outcomes as events until the browser goes away.
func (c *Console) pump(r *http.Request, w http.ResponseWriter, rc *http.ResponseController, msgs <-chan []byte) {
	beat := time.NewTicker(tailHeartbeat)
	defer beat.Stop()
	for {
		var err error
		select {
		case <-r.Context().Done():
			return
		case <-beat.C:
			_, err = fmt.Fprint(w, ": beat\n\n")
		case data := <-msgs:
			// Outcome records are single-line JSON (encoding/json never writes a newline).
			_, err = fmt.Fprintf(w, "event: outcome\ndata: %s\n\n", data)
		}
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			return
		}
	}
}
