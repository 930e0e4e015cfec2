package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"hookstream/proto"
)

// apiCall is one API request made through instance.call and what it answered.
type apiCall struct {
	method, path string
	status       int
	header       http.Header
	body         []byte
}

// checkOpenAPI validates every answer the instance's API gave through call against the OpenAPI
// document it serves at /openapi.json (the one in proto/, embedded): each call's route must be
// in the document and its status and body must match the operation's response, so the
// document cannot drift from the server. Calls of paths outside the API (such as /readyz) are
// skipped only when the document has no server path for them and the test says so in skip.
func checkOpenAPI(t *testing.T, in *instance, skip ...string) {
	t.Helper()
	calls := in.calls
	code, raw := in.call("GET", "/openapi.json", "", nil)
	if code != http.StatusOK {
		t.Fatalf("GET /openapi.json: %d %s", code, raw)
	}
	ctx := context.Background()
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		t.Fatalf("load the OpenAPI document: %v", err)
	}
	if err := doc.Validate(ctx); err != nil {
		t.Fatalf("the OpenAPI document is invalid: %v", err)
	}
	doc.Servers = openapi3.Servers{{URL: in.api}}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, c := range calls {
		if skipped(c.path, skip) {
			continue
		}
		if err := validateCall(ctx, router, in.api, c); err != nil {
			t.Errorf("%s %s → %d: %v\n%s", c.method, c.path, c.status, err, clipBody(c.body))
		}
		checked++
	}
	if checked == 0 {
		t.Error("no API call to check against the OpenAPI document")
	}
}

func validateCall(ctx context.Context, router routers.Router, base string, c apiCall) error {
	req, err := http.NewRequest(c.method, base+c.path, nil)
	if err != nil {
		return err
	}
	route, params, err := router.FindRoute(req)
	if err != nil {
		return err
	}
	return openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}},
		Status: c.status, Header: c.header, Body: io.NopCloser(bytes.NewReader(c.body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	})
}

func skipped(path string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

func clipBody(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// The check itself: an answer that drifted from the document (a field missing, one added, a
// wrong type, an undocumented route) is refused.
func TestOpenAPICheckCatchesDrift(t *testing.T) {
	ctx := context.Background()
	doc, err := openapi3.NewLoader().LoadFromData(proto.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	doc.Servers = openapi3.Servers{{URL: "http://h"}}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	hdr := http.Header{"Content-Type": []string{"application/json"}}
	good := `{"id":1,"url":"https://a/b","event_types":["asset_updated"],"properties":{},"disabled":false,"created_at":"2026-12-05T07:33:55Z","updated_at":"2026-12-05T07:33:55Z"}`
	path := "/v1/client_applications/p1/webhooks/1"
	if err := validateCall(ctx, router, "http://h", apiCall{method: "GET", path: path, status: 200, header: hdr, body: []byte(good)}); err != nil {
		t.Fatalf("a conforming answer was refused: %v", err)
	}
	for name, c := range map[string]apiCall{
		"field missing":      {method: "GET", path: path, status: 200, body: []byte(strings.Replace(good, `"disabled":false,`, "", 1))},
		"field added":        {method: "GET", path: path, status: 200, body: []byte(strings.Replace(good, `{"id":1,`, `{"id":1,"extra":1,`, 1))},
		"wrong type":         {method: "GET", path: path, status: 200, body: []byte(strings.Replace(good, `"id":1`, `"id":"1"`, 1))},
		"undocumented route": {method: "GET", path: "/v1/client_applications/p1/hooks", status: 200, body: []byte(`{}`)},
		"error shape":        {method: "GET", path: path, status: 404, body: []byte(`{"message":"no"}`)},
	} {
		c.header = hdr
		if err := validateCall(ctx, router, "http://h", c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
