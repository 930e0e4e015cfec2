package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"hookstream/pkg/signing"
	"hookstream/pkg/stream"
	"hookstream/pkg/web"
	"hookstream/proto"
)

// DefaultOverlap is how long the previous secret keeps signing after a rotation.
const DefaultOverlap = 24 * time.Hour

const maxOverlap = 7 * 24 * time.Hour

// storeSecret writes one entry of the secrets bucket. It is the only place that writes a secret
// (the API never reads one back); encryption at rest wraps this function and the signer's
// loadSecret.
func (s *Service) storeSecret(ctx context.Context, key string, sec *proto.Secret) error {
	sec.V = proto.Version
	data, err := proto.Marshal(sec)
	if err != nil {
		return err
	}
	// Sealed under the master key with the KV key as associated data (pkg/secretbox).
	if data, err = s.cfg.Secrets.Seal(data, []byte(key)); err != nil {
		return err
	}
	if _, err := s.secrets.Put(ctx, key, data); err != nil {
		return fmt.Errorf("store secret: %w", err)
	}
	return nil
}

// purgeSecrets removes every secret of a stream (all generations and the auth secrets).
func (s *Service) purgeSecrets(ctx context.Context, def *stream.Stream) {
	for gen := 0; gen <= max(def.SecretGen, def.PrevSecretGen); gen++ {
		_ = s.secrets.Purge(ctx, proto.SecretKey(def.Partition, def.ID, gen))
	}
	_ = s.secrets.Purge(ctx, proto.AuthSecretKey(def.Partition, def.ID))
}

// keyKind groups schemes that share a secret form: the hub schemes use the same secret.
func keyKind(scheme string) string {
	switch scheme {
	case proto.SignatureStandardWebhooks, proto.SignatureStandardWebhooksEd25519:
		return scheme
	}
	return "hub"
}

// newKey turns a user-given secret (already validated) or, when given is nil, a generated one
// into what the signer stores, and returns the string to show the user once ("" for a given
// secret, which the user already has, and for Ed25519, whose receivers need the public key only).
func newKey(def *stream.Stream, given *string) (material []byte, shown, publicKey string) {
	switch def.Signature {
	case proto.SignatureStandardWebhooks:
		if given != nil {
			return []byte(*given), "", ""
		}
		sec := signing.GenerateStandardSecret()
		return []byte(sec), sec, ""
	case proto.SignatureStandardWebhooksEd25519:
		var seed []byte
		if given != nil {
			seed, _ = signing.ParseEd25519Secret(*given)
		} else {
			seed = signing.GenerateEd25519Seed()
		}
		return seed, "", signing.PublicKey(seed)
	}
	if given != nil {
		return []byte(*given), "", ""
	}
	sec := signing.GenerateHubSecret()
	return []byte(sec), sec, ""
}

// writeSecrets stores the secrets a create (oldScheme "") or PATCH body carries, generating a
// signing secret when a scheme is asked for without one, or when a PATCH changes the scheme to
// one whose secret has another form. It updates def's secret state and returns the generated
// secret to show once.
func (s *Service) writeSecrets(ctx context.Context, def *stream.Stream, b *streamBody, oldScheme string) (string, error) {
	create := oldScheme == ""
	need := b.WebhookSecret != nil ||
		b.Signature != nil && (!def.HasSecret || keyKind(oldScheme) != keyKind(def.Signature))
	var shown string
	if need {
		material, sh, pub := newKey(def, b.WebhookSecret)
		if err := s.storeSecret(ctx, proto.SecretKey(def.Partition, def.ID, def.SecretGen), &proto.Secret{Current: material}); err != nil {
			return "", err
		}
		shown = sh
		def.HasSecret, def.PublicKey = true, pub
		if !create {
			def.PrevSecretUntil, def.PrevPublicKey = time.Time{}, "" // a replaced secret stops signing at once
		}
	}
	if b.Auth != nil {
		key := proto.AuthSecretKey(def.Partition, def.ID)
		var sec proto.Secret
		switch def.AuthType {
		case proto.AuthBasic:
			sec.BasicPassword = b.Auth.Password
		case proto.AuthHeader:
			sec.HeaderValue = b.Auth.Value
		case proto.AuthOAuth2:
			sec.OAuth2ClientSecret = b.Auth.ClientSecret
		default:
			_ = s.secrets.Purge(ctx, key)
			return shown, nil
		}
		if err := s.storeSecret(ctx, key, &sec); err != nil {
			return "", err
		}
	}
	return shown, nil
}

// copySecretState carries the secret state writeSecrets set on the validated copy of a stream
// onto the stream being updated.
func copySecretState(d, from *stream.Stream) {
	d.HasSecret, d.PublicKey, d.PrevPublicKey = from.HasSecret, from.PublicKey, from.PrevPublicKey
	d.SecretGen, d.PrevSecretGen, d.PrevSecretUntil = from.SecretGen, from.PrevSecretGen, from.PrevSecretUntil
}

type rotateBody struct {
	WebhookSecret  *string `json:"webhookSecret"`
	OverlapSeconds *int    `json:"overlapSeconds"`
}

// rotateSecret is POST …/streams/{id}/secret: a new signing secret (given or generated) signs
// from now on; the current one keeps signing too until the overlap (default 24 h) ends. The
// answer is the stream with the new secret, shown this once (or the new public key).
func (s *Service) rotateSecret(w http.ResponseWriter, r *http.Request, partition string) error {
	body, err := readRotateBody(w, r)
	if err != nil {
		return err
	}
	def, shown, err := s.rotate(r.Context(), partition, r.PathValue("id"), body)
	if err != nil {
		return err
	}
	res := resource(def, s.targetState(r.Context(), def))
	res.Attributes.WebhookSecret = shown
	web.WriteJSON(w, http.StatusOK, res)
	return nil
}

// rotate gives a stream a new signing secret (body's, or a generated one) and returns the
// stream and the secret to show once. Every API's change-secret call comes through here.
func (s *Service) rotate(ctx context.Context, partition, id string, body rotateBody) (*stream.Stream, string, error) {
	probe, _, err := s.load(ctx, partition, id)
	if err != nil {
		return nil, "", err
	}
	overlap, werr := body.overlap()
	if werr != nil {
		return nil, "", werr
	}
	if body.WebhookSecret != nil {
		if werr := checkSecret(probe.Signature, *body.WebhookSecret); werr != nil {
			return nil, "", werr
		}
	}
	gen := max(probe.SecretGen, probe.PrevSecretGen) + 1
	next := *probe
	next.SecretGen = gen
	material, shown, pub := newKey(&next, body.WebhookSecret)
	// The new generation is stored before the stream points at it.
	if err := s.storeSecret(ctx, proto.SecretKey(partition, id, gen), &proto.Secret{Current: material}); err != nil {
		return nil, "", err
	}
	var drop []int
	def, err := s.update(ctx, partition, id, func(d *stream.Stream) error {
		drop = rotate(d, gen, pub, overlap, time.Now())
		return nil
	})
	bg := context.WithoutCancel(ctx)
	if err != nil {
		_ = s.secrets.Purge(bg, proto.SecretKey(partition, id, gen))
		return nil, "", err
	}
	for _, g := range drop {
		_ = s.secrets.Purge(bg, proto.SecretKey(partition, id, g))
	}
	s.log.Info("stream secret rotated", "partition", partition, "stream_id", id, "overlap", overlap.String())
	return def, shown, nil
}

// readRotateBody reads the optional body of a rotation: none, or an empty one, asks for the
// defaults.
func readRotateBody(w http.ResponseWriter, r *http.Request) (rotateBody, error) {
	var body rotateBody
	if r.ContentLength == 0 {
		return body, nil
	}
	if err := web.DecodeJSON(w, r, &body); err != nil {
		var we *web.Error
		if !errors.As(err, &we) || we.Message != "request body is empty" {
			return body, err
		}
	}
	return body, nil
}

// overlap is how long the current secret keeps signing after the rotation.
func (b rotateBody) overlap() (time.Duration, *web.Error) {
	if b.OverlapSeconds == nil {
		return DefaultOverlap, nil
	}
	if *b.OverlapSeconds < 0 || time.Duration(*b.OverlapSeconds)*time.Second > maxOverlap {
		return 0, web.BadRequest("overlapSeconds", "must be 0 to %d", int(maxOverlap/time.Second))
	}
	return time.Duration(*b.OverlapSeconds) * time.Second, nil
}

// rotate points d at secret generation gen (public key pub, for Ed25519) from now on, keeping
// its current generation as the previous one until now+overlap, and returns the generations
// that no longer sign: the one before the previous, and with no overlap the current one.
func rotate(d *stream.Stream, gen int, pub string, overlap time.Duration, now time.Time) (drop []int) {
	if d.HasSecret {
		if !d.PrevSecretUntil.IsZero() && d.PrevSecretGen != d.SecretGen {
			drop = append(drop, d.PrevSecretGen)
		}
		d.PrevSecretGen, d.PrevPublicKey = d.SecretGen, d.PublicKey
		d.PrevSecretUntil = now.Add(overlap)
		if overlap == 0 {
			d.PrevSecretUntil = time.Time{}
			drop = append(drop, d.SecretGen)
		}
	}
	d.SecretGen, d.PublicKey, d.HasSecret = gen, pub, true
	return drop
}
