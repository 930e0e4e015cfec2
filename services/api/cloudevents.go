package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"hookstream/pkg/identity"
	"hookstream/pkg/web"
	"hookstream/proto"
)

// A partition's CloudEvents identity (pkg/identity): the source templates and type names its
// events carry, and its organization id. GET answers the settings in force (the defaults for a
// partition without settings, with "configured": false); PUT replaces them; DELETE returns
// the partition to hookstream's identity. Ingest and the signer watch the partitions bucket, so
// a change applies to readings ingested from then on (a reading keeps the source it was
// ingested with).

// cloudEventsResource is the answer of the identity routes.
type cloudEventsResource struct {
	Configured      bool   `json:"configured"`
	OrgID           string `json:"orgId"`
	PointSource     string `json:"pointSource"`
	LiveQuerySource string `json:"liveQuerySource"`
	PointType       string `json:"pointType"`
	LiveQueryType   string `json:"liveQueryType"`
}

func cloudEventsOf(partition string, id *identity.Identity) cloudEventsResource {
	r := cloudEventsResource{
		Configured: id.Configured(), OrgID: id.Org(partition),
		PointSource: identity.DefaultPointSource, LiveQuerySource: identity.DefaultLiveQuerySource,
		PointType: id.PointType(), LiveQueryType: id.LiveQueryType(),
	}
	if id != nil && id.PointSourceTemplate != "" {
		r.PointSource = id.PointSourceTemplate
	}
	if id != nil && id.LiveQuerySourceTemplate != "" {
		r.LiveQuerySource = id.LiveQuerySourceTemplate
	}
	return r
}

func (s *Service) getCloudEvents(w http.ResponseWriter, r *http.Request, partition string) error {
	id, err := identity.Load(r.Context(), s.partitions, partition)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, cloudEventsOf(partition, id))
	return nil
}

func (s *Service) putCloudEvents(w http.ResponseWriter, r *http.Request, partition string) error {
	var id identity.Identity
	if err := web.DecodeJSON(w, r, &id); err != nil {
		return err
	}
	if err := id.Validate(); err != nil {
		var ie *identity.InvalidError
		if errors.As(err, &ie) {
			return web.BadRequest(ie.Field, "%s", ie.Reason)
		}
		return err
	}
	if !id.Configured() {
		return web.BadRequest("", "set at least one of orgId, pointSource, liveQuerySource, pointType, liveQueryType (DELETE returns to the defaults)")
	}
	data, err := json.Marshal(&id)
	if err != nil {
		return err
	}
	if _, err := s.partitions.Put(r.Context(), proto.CloudEventsKey(partition), data); err != nil {
		return fmt.Errorf("store cloudevents identity: %w", err)
	}
	s.log.Info("cloudevents identity set", "partition", partition)
	web.WriteJSON(w, http.StatusOK, cloudEventsOf(partition, &id))
	return nil
}

func (s *Service) deleteCloudEvents(w http.ResponseWriter, r *http.Request, partition string) error {
	if err := s.partitions.Purge(r.Context(), proto.CloudEventsKey(partition)); err != nil {
		return fmt.Errorf("delete cloudevents identity: %w", err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
