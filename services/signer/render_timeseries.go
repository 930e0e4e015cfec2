package signer

import (
	"encoding/json"
	"fmt"

	"hookstream/proto"
)

// timeseriesData is seed 002's time-series payload, keys in the seed's order.
type timeseriesData struct {
	PointID   string          `json:"pointId"`
	Timestamp string          `json:"timestamp"`
	Value     json.RawMessage `json:"value"`
}

func timeseriesOf(ev *proto.Event) timeseriesData {
	return timeseriesData{PointID: ev.Subject, Timestamp: rfc3339Nano(ev.Time), Value: value(ev)}
}

// renderTimeseries writes seed 002's default payload, one call per value:
//
//	{"pointId":"PNTJDa8aQ5LAwfHPn5iGQemwW","timestamp":"2023-10-16T17:44:42.83269Z","value":100}
func renderTimeseries(ev *proto.Event) ([]byte, error) {
	if ev.Type != proto.EventTypePoint {
		return nil, fmt.Errorf("format timeseries cannot render a %q event", ev.Type)
	}
	return marshal(timeseriesOf(ev))
}
