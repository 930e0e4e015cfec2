package match

import "github.com/google/uuid"

var idNamespace = uuid.MustParse("0b7e2f5c-3a9d-4e61-8c2b-7d4f1e6a9b30")

// DeliveryID is the stable id of the delivery of one event to one stream: the webhook-id that
// every attempt carries. The matcher and replay both use it, so that a replayed event a receiver
// already has carries the id it already saw.
func DeliveryID(eventID, streamID string) string {
	return uuid.NewSHA1(idNamespace, []byte(eventID+"/"+streamID)).String()
}
