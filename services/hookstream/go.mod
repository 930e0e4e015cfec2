module hookstream/services/hookstream

go 1.26.8

require (
	github.com/nats-io/nats-server/v2 v2.15.2
	github.com/nats-io/nats.go v1.55.0
	golang.org/x/sync v0.19.0
	hookstream/pkg v0.0.0
	hookstream/proto v0.0.0
	hookstream/services/api v0.0.0
	hookstream/services/delivery v0.0.0
	hookstream/services/ingest v0.0.0
	hookstream/services/matcher v0.0.0
	hookstream/services/signer v0.0.0
)

require (
	github.com/antithesishq/antithesis-sdk-go v0.8.0-default-no-op // indirect
	github.com/golang-jwt/jwt/v5 v5.3.1 // indirect
	github.com/google/go-tpm v0.9.8 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/hashicorp/go-cleanhttp v0.5.2 // indirect
	github.com/hashicorp/go-retryablehttp v0.7.8 // indirect
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/minio/highwayhash v1.0.4 // indirect
	github.com/nats-io/jwt/v2 v2.8.2 // indirect
	github.com/nats-io/nkeys v0.4.16 // indirect
	github.com/nats-io/nuid v1.0.1 // indirect
	github.com/vmihailenco/msgpack/v5 v5.4.1 // indirect
	github.com/vmihailenco/tagparser/v2 v2.0.0 // indirect
	golang.org/x/crypto v0.58.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/time v0.16.0 // indirect
)

replace (
	hookstream/pkg => ../../pkg
	hookstream/proto => ../../proto
	hookstream/services/api => ../api
	hookstream/services/delivery => ../delivery
	hookstream/services/ingest => ../ingest
	hookstream/services/matcher => ../matcher
	hookstream/services/signer => ../signer
)
