package proto

import _ "embed" // the OpenAPI document

// OpenAPI is the OpenAPI 3.1 document of the management API: the native routes, the seed 001
// and 004 adapters and seed 002's /graphql (services/api serves it at /openapi.json; the e2e
// suite validates real responses against it). Read-only.
//
//go:embed openapi.json
var OpenAPI []byte
